"""Inbound messages whose processing kept failing: each failure counted, the message set aside (a dead
letter) after too many, listed for operators and put back for processing on request.

Only ids, times, channels, counts and an exception's class name are kept: never the text or the error's
message, which may quote what a person wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from registry import schema

ERROR_LENGTH = 64  # the column's width

_i = schema.inbound.c


@dataclass(frozen=True)
class DeadLetter:
    """One message set aside: what an operator may see of it."""

    id: int
    received_at: datetime
    failed_at: datetime
    channel: str
    attempts: int
    error: str | None


async def record_failure(conn: AsyncConnection, inbound_id: int, error: str, now: datetime,
                         limit: int) -> str | None:
    """Count one failed attempt at processing a message; when this one (its ``limit``-th) sets it aside,
    the message's channel, otherwise None.

    The count is one statement, so processes sweeping at once never lose an attempt.
    """
    reached = _i.attempts + 1 >= limit
    row = (await conn.execute(
        update(schema.inbound)
        .where(_i.id == inbound_id, _i.processed_at.is_(None), _i.failed_at.is_(None))
        .values(attempts=_i.attempts + 1, error=error[:ERROR_LENGTH], failed_at=case((reached, now), else_=None))
        .returning(_i.failed_at, _i.channel))).first()
    return row.channel if row is not None and row.failed_at is not None else None


async def waiting(conn: AsyncConnection) -> int:
    """How many messages are set aside and not processed."""
    query = select(func.count()).select_from(schema.inbound).where(
        _i.failed_at.is_not(None), _i.processed_at.is_(None))
    return int((await conn.execute(query)).scalar_one())


async def listing(conn: AsyncConnection) -> list[DeadLetter]:
    """The messages set aside and not processed, oldest first."""
    rows = (await conn.execute(
        select(_i.id, _i.received_at, _i.failed_at, _i.channel, _i.attempts, _i.error)
        .where(_i.failed_at.is_not(None), _i.processed_at.is_(None)).order_by(_i.id))).all()
    return [DeadLetter(r.id, r.received_at, r.failed_at, r.channel, r.attempts, r.error) for r in rows]


async def put_back(conn: AsyncConnection, inbound_id: int) -> bool:
    """Make a message set aside due for processing again, with a fresh count; False when it is not set aside."""
    done = await conn.execute(
        update(schema.inbound)
        .where(_i.id == inbound_id, _i.failed_at.is_not(None), _i.processed_at.is_(None))
        .values(failed_at=None, attempts=0, error=None))
    return bool(done.rowcount)
