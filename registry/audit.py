"""The append-only, hash-chained audit log.

Each entry's hash covers its own fields and the previous entry's hash, so
editing, deleting or reordering any entry breaks the chain from there on.
Entries name actors, actions and record ids: never personal data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from registry import schema

GENESIS = "0" * 64
log = structlog.get_logger("beacon.audit")
# Built once: every consent and profile change appends an entry.
_LOCK = text("SELECT pg_advisory_xact_lock(7466354)")
_LAST = select(schema.audit_log.c.seq, schema.audit_log.c.hash).order_by(schema.audit_log.c.seq.desc()).limit(1)
_INSERT = schema.audit_log.insert()


def _digest(seq: int, at: str, actor: str, action: str, subject: str | None, detail: str, prev: str) -> str:
    material = json.dumps([seq, at, actor, action, subject, detail, prev], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


async def append(conn: AsyncConnection, actor: str, action: str, subject: str | None = None,
                 detail: dict[str, object] | None = None) -> int:
    """Add one entry inside the caller's transaction; returns its sequence number."""
    if conn.dialect.name == "postgresql":
        await conn.execute(_LOCK)
    last = (await conn.execute(_LAST)).first()
    seq = (last.seq + 1) if last else 1
    prev = last.hash if last else GENESIS
    at = datetime.now(UTC)
    body = json.dumps(detail or {}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = _digest(seq, at.isoformat(), actor, action, subject, body, prev)
    await conn.execute(_INSERT, {"seq": seq, "at": at, "actor": actor, "action": action, "subject": subject,
                                 "detail": body, "prev_hash": prev, "hash": digest})
    # The hash in the service log is an outside anchor: truncating the table's tail shows against it.
    log.info("audit.appended", seq=seq, action=action, hash=digest)
    return seq


@dataclass(frozen=True)
class Verdict:
    """The result of checking the chain."""

    ok: bool
    entries: int
    broken_at: int | None = None
    reason: str = ""


def _iso(value: datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


async def entries(conn: AsyncConnection, *, actor: str | None = None, action: str | None = None,
                  subject: str | None = None, after: int | None = None, before: int | None = None,
                  since: datetime | None = None, until: datetime | None = None, limit: int = 200) -> list[Any]:
    """The latest entries, newest first: of one actor, action or subject, between sequence numbers
    (exclusive) or times (``since`` inclusive, ``until`` exclusive)."""
    a = schema.audit_log.c
    query = select(schema.audit_log).order_by(a.seq.desc()).limit(limit)
    for column, value in ((a.actor, actor), (a.action, action), (a.subject, subject)):
        if value:
            query = query.where(column == value)
    if after is not None:
        query = query.where(a.seq > after)
    if before is not None:
        query = query.where(a.seq < before)
    if since is not None:
        query = query.where(a.at >= since)
    if until is not None:
        query = query.where(a.at < until)
    return list((await conn.execute(query)).all())


async def verify(conn: AsyncConnection) -> Verdict:
    """Walk the whole chain; report the first entry that does not hold."""
    prev = GENESIS
    expected = 1
    count = 0
    total = (await conn.execute(select(func.count()).select_from(schema.audit_log))).scalar_one()
    result = await conn.stream(select(schema.audit_log).order_by(schema.audit_log.c.seq))
    async for row in result:
        count += 1
        if row.seq != expected:
            return Verdict(False, total, expected, f"entry {expected} is missing")
        if row.prev_hash != prev:
            return Verdict(False, total, row.seq, "previous-hash link does not match")
        if _digest(row.seq, _iso(row.at), row.actor, row.action, row.subject, row.detail, prev) != row.hash:
            return Verdict(False, total, row.seq, "entry was altered")
        prev = row.hash
        expected += 1
    return Verdict(True, count)
