"""Need-help cases: opened by a check-in, worked by responders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.vocabulary import CaseStatus, Need
from registry import schema
from registry.case_files import open_notes, seal_details, seal_notes
from registry.crypto import KeyRing

CATEGORIES = tuple(Need)
STATUSES = tuple(CaseStatus)
# Which status may follow which: a closed case can be reopened when help is needed again.
TRANSITIONS: dict[str, set[str]] = {
    CaseStatus.OPEN: {CaseStatus.IN_PROGRESS, CaseStatus.CLOSED},
    CaseStatus.IN_PROGRESS: {CaseStatus.OPEN, CaseStatus.CLOSED},
    CaseStatus.CLOSED: {CaseStatus.OPEN},
}


class CaseError(Exception):
    """A change a case cannot take."""


async def open_case(conn: AsyncConnection, registrant_id: int, broadcast_id: int | None, area_id: str | None) -> int:
    """Open a case at once, or return the registrant's case that is still open."""
    c = schema.cases.c
    existing = (await conn.execute(select(c.id).where(
        c.registrant_id == registrant_id, c.status != CaseStatus.CLOSED).order_by(c.id.desc()).limit(1))).scalar()
    if existing is not None:
        return int(existing)
    now = datetime.now(UTC)
    case_id = (await conn.execute(schema.cases.insert().values(
        registrant_id=registrant_id, broadcast_id=broadcast_id, area_id=area_id, status=CaseStatus.OPEN,
        created_at=now, updated_at=now).returning(c.id))).scalar_one()
    return int(case_id)


async def latest_case(conn: AsyncConnection, registrant_id: int) -> int | None:
    """The registrant's newest case that is not closed."""
    c = schema.cases.c
    found = (await conn.execute(select(c.id).where(c.registrant_id == registrant_id, c.status != CaseStatus.CLOSED)
                                .order_by(c.id.desc()).limit(1))).scalar()
    return int(found) if found is not None else None


async def describe_need(conn: AsyncConnection, keys: KeyRing, registrant_id: int, *, category: str | None = None,
                        details: str | None = None) -> None:
    """Add the kind of help or the person's own words to their open case."""
    case_id = await latest_case(conn, registrant_id)
    if case_id is None:
        return
    values: dict[str, Any] = {"updated_at": datetime.now(UTC)}
    if category is not None:
        values["category"] = category
    if details is not None:
        values["details_ct"] = seal_details(keys, case_id, details)
    await conn.execute(update(schema.cases).where(schema.cases.c.id == case_id).values(**values))


async def find(conn: AsyncConnection, *, status: str | None = None, area_ids: set[str] | None = None,
               category: str | None = None, limit: int = 200) -> list[Any]:
    """Cases matching the filters, newest first."""
    c = schema.cases.c
    query = select(schema.cases).order_by(c.id.desc()).limit(limit)
    if status:
        query = query.where(c.status == status)
    if area_ids is not None:
        query = query.where(c.area_id.in_(sorted(area_ids)))
    if category:
        query = query.where(c.category == category)
    return list((await conn.execute(query)).all())


async def change(conn: AsyncConnection, keys: KeyRing, case_id: int, *, by: str, status: str | None = None,
                 assignee: str | None = None, note: str | None = None) -> tuple[Any, str | None]:
    """Apply a responder's change; returns the updated row and the status it moved to (if it moved)."""
    c = schema.cases.c
    row = (await conn.execute(select(schema.cases).where(c.id == case_id))).first()
    if row is None:
        raise CaseError("no such case")
    now = datetime.now(UTC)
    values: dict[str, Any] = {"updated_at": now}
    moved = None
    if status is not None and status != row.status:
        if status not in TRANSITIONS[row.status]:
            raise CaseError(f"a {row.status} case cannot become {status}")
        values["status"] = moved = status
        values["closed_at"] = now if status == CaseStatus.CLOSED else None
    if assignee is not None:
        values["assignee"] = assignee or None
    if note:
        notes = open_notes(keys, case_id, row.notes_ct) + [{"at": now.isoformat(), "by": by, "text": note}]
        values["notes_ct"] = seal_notes(keys, case_id, notes)
    await conn.execute(update(schema.cases).where(c.id == case_id).values(**values))
    updated = (await conn.execute(select(schema.cases).where(c.id == case_id))).first()
    return updated, moved

