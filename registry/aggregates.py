"""Counts of registered people by area, nationality, gender, ...: the SQL side of ``/api/v1/stats``.

Who is counted: every *registered* person, i.e. one who consented and gave an area (the point at
which the contract calls registration complete). People who texted STOP are still counted: STOP
only pauses broadcasts, they are still residents we hold (with consent) and left out they would
make the table depend on a messaging preference. People who refused consent or asked for erasure
are not in the table at all (nothing but an opt-out marker is kept for them).

With ``broadcast=<id>`` the population is that broadcast's recipients who are still registered;
``status`` (needs ``broadcast``) is their answer to its check-in: ``safe``, ``need_help`` or
``no_reply``. ``answer`` (a poll's: only through :func:`poll_query`) is the recipient's latest poll
answer, the option's number, or ``no_reply``.

Dimensions: ``area`` (rolled up to a gazetteer ``level``: 0 is the top, deeper areas count into
their ancestor at that level, shallower ones stay themselves; an id the gazetteer no longer knows
is ``unknown``), ``nationality``, ``gender``, ``age_band``, ``language``, ``channel`` (the channel of
the identity the person used last), ``status`` and ``source`` (the code of the outreach source the
person registered through). A missing value is ``unknown``.

Nothing here is publishable as is: :mod:`registry.disclosure` decides what may be shown.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.sql.elements import ColumnElement

from domain.areas import Gazetteer
from domain.vocabulary import CheckInStatus
from registry import schema
from registry.db import Database
from registry.times import aware

DIMENSIONS = ("area", "nationality", "gender", "age_band", "language", "channel", "status", "source")
# Dimensions computed per person by a subquery, then grouped.
PER_PERSON = frozenset({"channel", "source"})
STATUSES = tuple(CheckInStatus)
UNKNOWN = "unknown"
# Above this many registrant ids, SQLite is asked in id ranges on several connections at once: a
# GROUP BY there is one sort on one core, and the ranges sort in parallel (unless an index covers
# the query, when one pass over the index needs no sort at all).
PARALLEL_FROM = 200_000
MAX_PARALLEL = 4


class QueryError(ValueError):
    """A stats request that cannot be answered; ``field`` names the parameter at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class StatsQuery:
    """What to count: the dimensions, the area level and the broadcast whose recipients are counted."""

    by: tuple[str, ...]
    level: int = 0
    broadcast: int | None = None

    def describe(self) -> dict[str, Any]:
        """The request as it is audited and echoed in exports (no personal data)."""
        return {"by": list(self.by), "level": self.level, "broadcast": self.broadcast}


@dataclass(frozen=True)
class Counts:
    """Raw counts of one query, keyed by tuples of dimension values (only non-zero cells)."""

    query: StatsQuery
    cells: dict[tuple[str, ...], int]
    data_as_of: datetime | None  # when the registry last changed (see data_as_of())


def depths(gazetteer: Gazetteer) -> dict[str, int]:
    """Each area's depth: 0 for top-level areas."""
    found: dict[str, int] = {}

    def depth(area_id: str) -> int:
        if area_id not in found:
            parent = gazetteer.areas[area_id].parent
            found[area_id] = 0 if parent is None else depth(parent) + 1
        return found[area_id]

    for area_id in gazetteer.areas:
        depth(area_id)
    return found


def max_level(gazetteer: Gazetteer) -> int:
    return max(depths(gazetteer).values(), default=0)


def rollup(gazetteer: Gazetteer, level: int) -> dict[str, str]:
    """Area id -> the area it counts into at ``level`` (itself when it is not deeper)."""
    known = depths(gazetteer)
    mapping = {}
    for area_id, depth in known.items():
        target = area_id
        while depth > level:
            parent = gazetteer.areas[target].parent
            assert parent is not None
            target, depth = parent, depth - 1
        mapping[area_id] = target
    return mapping


def parse_query(by: str | None, level: str | None, broadcast: str | None, gazetteer: Gazetteer,
                default_by: Sequence[str] = ("area",)) -> StatsQuery:
    """Check request parameters; QueryError names the first one at fault."""
    names = [part.strip() for part in by.split(",")] if by is not None else list(default_by)
    if not names or any(not name for name in names):
        raise QueryError("by", "by must list one or more of: " + ", ".join(DIMENSIONS))
    unknown = [name for name in names if name not in DIMENSIONS]
    if unknown:
        raise QueryError("by", f"unknown dimension(s): {', '.join(unknown)}; known: {', '.join(DIMENSIONS)}")
    if len(set(names)) != len(names):
        raise QueryError("by", "a dimension is listed twice")
    deepest = max_level(gazetteer)
    chosen_level = 0
    if level is not None and level != "":
        try:
            chosen_level = int(level)
        except ValueError:
            raise QueryError("level", "level must be a whole number") from None
        if not 0 <= chosen_level <= deepest:
            raise QueryError("level", f"level must be between 0 and {deepest}")
    broadcast_id = None
    if broadcast is not None and broadcast != "":
        try:
            broadcast_id = int(broadcast)
        except ValueError:
            raise QueryError("broadcast", "broadcast must be a broadcast id") from None
        if not 1 <= broadcast_id < 2**63:
            raise QueryError("broadcast", "no such broadcast")
    if "status" in names and broadcast_id is None:
        raise QueryError("broadcast", "status needs broadcast=<id>: the check-in whose answers to count")
    return StatsQuery(tuple(names), chosen_level, broadcast_id)


def poll_query(by: str | None, level: str | None, broadcast_id: int, gazetteer: Gazetteer) -> StatsQuery:
    """A poll's answers by the dimensions in ``by`` (default: area); QueryError names the field at fault."""
    base = parse_query(by, level, None, gazetteer)
    if "status" in base.by:
        raise QueryError("by", "status is a check-in's answer: ask /api/v1/stats?broadcast=<id>")
    return StatsQuery(("answer", *base.by), base.level, broadcast_id)


def _column_order(query: StatsQuery) -> list[str]:
    """The dimensions in the statement's order: the area goes last, since first SQLite would walk
    the area index for the GROUP BY, which is slower than sorting."""
    return sorted(query.by, key=lambda name: name == "area")


def _statement(query: StatsQuery, id_range: tuple[int, int] | None = None):  # type: ignore[no-untyped-def]
    """SELECT <dimensions>, count(*) ... GROUP BY <dimensions> over the counted population."""
    r, i, b = schema.registrants.c, schema.identities.c, schema.recipients.c
    source: dict[str, ColumnElement[Any]] = {
        "area": r.area_id, "nationality": r.nationality, "gender": r.gender, "age_band": r.age_band,
        "language": r.language, "status": b.answer, "answer": b.poll_answer}
    if "channel" in query.by:  # the identity used last; computed per person below, then grouped
        source["channel"] = (select(i.last_channel).where(i.registrant_id == r.id)
                             .order_by(i.last_used_at.desc(), i.id.desc()).limit(1).scalar_subquery())
    if "source" in query.by:
        s = schema.sources.c
        source["source"] = select(s.code).where(s.id == r.source_id).scalar_subquery()
    ordered = _column_order(query)
    people = select(*(source[name].label(name) for name in ordered))
    if query.broadcast is not None:
        people = people.select_from(schema.registrants.join(
            schema.recipients, and_(b.registrant_id == r.id, b.broadcast_id == query.broadcast)))
    else:
        people = people.select_from(schema.registrants)
    people = people.where(r.consented.is_(True), r.area_id.is_not(None))
    if id_range is not None:
        people = people.where(r.id > id_range[0], r.id <= id_range[1])
    if not PER_PERSON & set(query.by):
        return people.add_columns(func.count().label("n")).group_by(*(source[name] for name in ordered))
    inner = people.subquery("people")
    columns = [inner.c[name] for name in ordered]
    return select(*columns, func.count().label("n")).group_by(*columns)


async def check_broadcast(db: Database, query: StatsQuery) -> None:
    """QueryError when the broadcast does not exist, or has no check-in (or poll) to count."""
    if query.broadcast is None:
        return
    async with db.read() as conn:
        row = (await conn.execute(select(schema.broadcasts.c.check_in, schema.broadcasts.c.poll).where(
            schema.broadcasts.c.id == query.broadcast))).first()
    if row is None:
        raise QueryError("broadcast", f"no such broadcast: {query.broadcast}")
    if "answer" in query.by and not row.poll:
        raise QueryError("broadcast", f"broadcast {query.broadcast} did not ask a poll")
    if "status" in query.by and not row.check_in:
        raise QueryError("broadcast", f"broadcast {query.broadcast} did not ask for a check-in")


async def _covered(db: Database, query: StatsQuery) -> bool:
    """Whether SQLite answers the query from a covering index (no sort: one pass is best then)."""
    async with db.read() as conn:
        sql = str(_statement(query).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        plan = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)).all()
    return any("COVERING INDEX" in str(step[-1]) for step in plan)


async def _rows(db: Database, query: StatsQuery) -> list[Any]:
    if db.sqlite:
        r = schema.registrants.c
        async with db.read() as conn:
            # Two scalar subqueries: SQLite answers each from the end of the primary key, where
            # min() and max() in one SELECT would scan a whole index.
            low, high = (await conn.execute(select(select(func.min(r.id)).scalar_subquery(),
                                                   select(func.max(r.id)).scalar_subquery()))).one()
        if low is not None and high - low >= PARALLEL_FROM and not await _covered(db, query):
            parts = max(1, min(MAX_PARALLEL, os.cpu_count() or 1))
            bounds = [low - 1 + (high - low + 1) * k // parts for k in range(parts + 1)]

            async def part(lo: int, hi: int) -> list[Any]:
                async with db.read() as conn:
                    return list((await conn.execute(_statement(query, (lo, hi)))).all())

            chunks = await asyncio.gather(*(part(bounds[k], bounds[k + 1]) for k in range(parts)))
            return [row for chunk in chunks for row in chunk]
    async with db.read() as conn:
        return list((await conn.execute(_statement(query))).all())


async def data_as_of(db: Database) -> datetime | None:
    """When the registry last changed: the latest message received (registrants change by messaging).

    Without any message (data loaded another way), the latest ``last_seen_at`` of a registrant.
    """
    i, r = schema.inbound.c, schema.registrants.c
    async with db.read() as conn:
        latest = (await conn.execute(select(i.received_at).order_by(i.id.desc()).limit(1))).scalar()
        if latest is None:
            latest = (await conn.execute(select(func.max(r.last_seen_at)))).scalar()
    if isinstance(latest, str):  # pragma: no cover - SQLite without type information
        latest = datetime.fromisoformat(latest)
    return aware(latest) if latest is not None else None


def _labeller(name: str, areas: dict[str, str]) -> Callable[[Any], str]:
    """How a raw database value becomes a published value for one dimension."""
    if name == "area":
        return lambda value: areas.get(value, UNKNOWN)
    if name == "status":
        return lambda value: value if value in ("safe", "need_help") else "no_reply"
    if name == "answer":
        return lambda value: str(value) if value else "no_reply"
    return lambda value: str(value) if value is not None and value != "" else UNKNOWN


async def count(db: Database, gazetteer: Gazetteer, query: StatsQuery) -> Counts:
    """Count registered people by ``query.by``; raw numbers, to be protected before publication."""
    await check_broadcast(db, query)
    areas = rollup(gazetteer, query.level)
    cells: dict[tuple[str, ...], int] = {}
    rows, seen = await asyncio.gather(_rows(db, query), data_as_of(db))
    ordered = _column_order(query)  # the rows' order; keys follow query.by
    positions = [ordered.index(name) for name in query.by]
    labels = [_labeller(name, areas) for name in ordered]
    for row in rows:
        raw = tuple(label(value) for label, value in zip(labels, row[:-1], strict=True))
        key = tuple(raw[p] for p in positions)
        cells[key] = cells.get(key, 0) + row[-1]
    return Counts(query, cells, seen)
