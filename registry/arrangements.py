"""Sharing arrangements: what a partner organisation may fetch, in which formats, and while it is in force.

The MICIC guidelines ask that aggregated data be shared under arrangements fixing the circumstances,
the format, how often it is updated, special runs on demand, the exception for small numbers and the
accepted purposes. A partner's API token is bound to one arrangement; :meth:`Arrangement.refusal`
says whether one fetch is inside it. Every fetch and every refusal is audited with the arrangement's
id as the subject, so the register's usage counts come from the audit log itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from registry import audit, schema
from registry.aggregates import StatsQuery

FORMATS = ("json", "csv", "geojson", "hxl")
FETCHED = "arrangement.fetch"
REFUSED = "arrangement.refused"
ENDED = "arrangement.ended"
SCHEDULED = "scheduled"  # a special_runs row that is the table of one update period, not a run asked for


@dataclass(frozen=True)
class Terms:
    """What an admin records: the partner and what it may fetch, how, why and until when."""

    partner: str
    contact: str
    purposes: tuple[str, ...]
    dimensions: tuple[str, ...]
    area_level: int
    min_cell: int
    formats: tuple[str, ...]
    frequency: str
    starts_on: date
    ends_on: date
    legal_basis: str


@dataclass(frozen=True)
class Ending:
    """An arrangement ended before its agreed end date: the end date it got, the one agreed, who, when, why.

    There is no column for it: the ``arrangement.ended`` audit entries are the record (see :func:`endings`).
    """

    ends_on: date
    agreed_until: date
    by: str
    at: datetime
    reason: str

    def as_json(self) -> dict[str, Any]:
        """The ending as the register shows it."""
        return {"ends_on": self.ends_on.isoformat(), "agreed_until": self.agreed_until.isoformat(), "by": self.by,
                "at": self.at.isoformat(timespec="seconds"), "reason": self.reason}


@dataclass(frozen=True)
class Arrangement:
    """A recorded arrangement (with its early ending, if an admin ended it early)."""

    id: int
    terms: Terms
    created_by: str
    created_at: datetime
    ending: Ending | None = None

    def in_force(self, today: date) -> bool:
        """From the start date up to, not including, the end date."""
        return self.terms.starts_on <= today < self.terms.ends_on

    def ended(self, today: date) -> bool:
        """Whether its end date has come (then it no longer works and can no longer be changed)."""
        return today >= self.terms.ends_on

    def not_in_force(self, today: date) -> str | None:
        """Why it does not work today ("ended_early", "not_in_force"), or None while it is in force."""
        if self.in_force(today):
            return None
        return "ended_early" if self.ending is not None and self.ended(today) else "not_in_force"

    def min_cell(self, service_min_cell: int) -> int:
        """The threshold for this partner: the arrangement's, never below the service's."""
        return max(self.terms.min_cell, service_min_cell)

    def refusal(self, query: StatsQuery, fmt: str, today: date) -> str | None:
        """Why a fetch of ``query`` as ``fmt`` is outside this arrangement (a short reason code); None inside."""
        if (reason := self.not_in_force(today)) is not None:
            return reason
        if fmt not in self.terms.formats:
            return "format"
        if any(name not in self.terms.dimensions for name in query.by):
            return "dimension"
        if query.broadcast is not None and "status" not in self.terms.dimensions:
            return "dimension"  # a broadcast's recipients are a population the arrangement does not cover
        if query.level > self.terms.area_level:
            return "area_level"
        return None

    def as_json(self) -> dict[str, Any]:
        """The arrangement as the API shows it."""
        t = self.terms
        return {"id": self.id, "partner": t.partner, "contact": t.contact, "purposes": list(t.purposes),
                "dimensions": list(t.dimensions), "area_level": t.area_level, "min_cell": t.min_cell,
                "formats": list(t.formats), "frequency": t.frequency, "starts_on": t.starts_on.isoformat(),
                "ends_on": t.ends_on.isoformat(), "legal_basis": t.legal_basis, "created_by": self.created_by,
                "created_at": self.created_at.isoformat(timespec="seconds"),
                "ended_early": self.ending.as_json() if self.ending else None}


def now() -> datetime:
    """The current moment (UTC): the clock of arrangements, their end dates and update periods (tests move it)."""
    return datetime.now(UTC)


def today() -> date:
    """Today in UTC: arrangements start and end on UTC dates."""
    return now().date()


def _day(value: Any) -> date:
    found: date = date.fromisoformat(value) if isinstance(value, str) else value
    return found


def _from_row(row: Any) -> Arrangement:
    created = row.created_at
    if isinstance(created, str):  # pragma: no cover - SQLite without type information
        created = datetime.fromisoformat(created)
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    terms = Terms(row.partner, row.contact, tuple(row.purposes), tuple(row.dimensions), row.area_level,
                  row.min_cell, tuple(row.formats), row.frequency, _day(row.starts_on), _day(row.ends_on),
                  row.legal_basis)
    return Arrangement(row.id, terms, row.created_by, created)


async def record(conn: AsyncConnection, terms: Terms, actor: str) -> Arrangement:
    """Store a new arrangement and audit it (ids and terms, no contact)."""
    now = datetime.now(UTC)
    new_id = (await conn.execute(schema.arrangements.insert().values(
        partner=terms.partner, contact=terms.contact, purposes=list(terms.purposes),
        dimensions=list(terms.dimensions), area_level=terms.area_level, min_cell=terms.min_cell,
        formats=list(terms.formats), frequency=terms.frequency, starts_on=terms.starts_on, ends_on=terms.ends_on,
        legal_basis=terms.legal_basis, created_by=actor, created_at=now,
    ).returning(schema.arrangements.c.id))).scalar_one()
    await audit.append(conn, actor, "arrangement.recorded", str(new_id), {
        "dimensions": list(terms.dimensions), "formats": list(terms.formats), "area_level": terms.area_level,
        "min_cell": terms.min_cell, "starts_on": terms.starts_on.isoformat(), "ends_on": terms.ends_on.isoformat()})
    return Arrangement(new_id, terms, actor, now)


async def find(conn: AsyncConnection, arrangement_id: int) -> Arrangement | None:
    """One arrangement by id."""
    row = (await conn.execute(select(schema.arrangements).where(schema.arrangements.c.id == arrangement_id))).first()
    if row is None:
        return None
    return replace(_from_row(row), ending=(await endings(conn, arrangement_id)).get(arrangement_id))


async def endings(conn: AsyncConnection, arrangement_id: int | None = None) -> dict[int, Ending]:
    """The early endings by arrangement id, from the audit log: the latest end date, who set it, when and why,
    and the end date first agreed."""
    log = schema.audit_log.c
    statement = select(log.actor, log.at, log.detail).where(log.action == ENDED).order_by(log.seq)
    if arrangement_id is not None:
        statement = statement.where(log.subject == str(arrangement_id))
    found: dict[int, Ending] = {}
    for actor, at, detail in (await conn.execute(statement)).all():
        entry = json.loads(detail)
        key = int(entry["arrangement"])
        agreed = found[key].agreed_until if key in found else _day(entry["agreed_until"])
        moment = datetime.fromisoformat(at) if isinstance(at, str) else at
        found[key] = Ending(_day(entry["ends_on"]), agreed, actor,
                            moment if moment.tzinfo else moment.replace(tzinfo=UTC), str(entry["reason"]))
    return found


async def end_early(conn: AsyncConnection, found: Arrangement, ends_on: date, reason: str,
                    actor: str) -> Arrangement | None:
    """Bring the end date forward to ``ends_on`` (today: at once) and audit who, why and the date it had;
    None when the arrangement changed meanwhile. The caller checks the new date is earlier and not past."""
    a = schema.arrangements.c
    changed = await conn.execute(update(schema.arrangements).where(
        a.id == found.id, a.ends_on == found.terms.ends_on).values(ends_on=ends_on))
    if changed.rowcount == 0:
        return None
    agreed = found.ending.agreed_until if found.ending else found.terms.ends_on
    await audit.append(conn, actor, ENDED, str(found.id), {
        "arrangement": found.id, "ends_on": ends_on.isoformat(), "was_until": found.terms.ends_on.isoformat(),
        "agreed_until": agreed.isoformat(), "reason": reason})
    return replace(found, terms=replace(found.terms, ends_on=ends_on),
                   ending=Ending(ends_on, agreed, actor, now(), reason))


async def register(conn: AsyncConnection) -> list[tuple[Arrangement, dict[str, int]]]:
    """Every arrangement, newest first, with its use: fetches, refused attempts and special runs."""
    a, log, runs = schema.arrangements.c, schema.audit_log.c, schema.special_runs.c
    rows = (await conn.execute(select(schema.arrangements).order_by(a.id.desc()))).all()
    audited = (await conn.execute(select(log.subject, log.action, func.count()).where(
        log.action.in_((FETCHED, REFUSED))).group_by(log.subject, log.action))).all()
    uses: dict[tuple[str, str], int] = {(subject, action): n for subject, action, n in audited}
    run_counts: dict[int, int] = {arrangement: n for arrangement, n in (await conn.execute(
        select(runs.arrangement_id, func.count()).where(runs.status != SCHEDULED).group_by(
            runs.arrangement_id))).all()}
    ended = await endings(conn)
    return [(replace(_from_row(row), ending=ended.get(row.id)), {"fetches": uses.get((str(row.id), FETCHED), 0),
                              "refused": uses.get((str(row.id), REFUSED), 0),
                              "special_runs": run_counts.get(row.id, 0)}) for row in rows]


async def audit_use(conn: AsyncConnection, actor: str, arrangement_id: int | None, refused: str | None,
                    detail: dict[str, Any]) -> None:
    """Audit one fetch under an arrangement (``refused`` None) or one refused attempt and its reason."""
    entry: dict[str, object] = {**detail, "arrangement": arrangement_id}
    if refused is not None:
        entry["reason"] = refused
    await audit.append(conn, actor, REFUSED if refused else FETCHED,
                       None if arrangement_id is None else str(arrangement_id), entry)

