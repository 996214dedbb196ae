"""The append-only, keyed hash-chained audit log.

Each entry's hash covers its own fields and the previous entry's hash, so editing, deleting or
reordering any entry breaks the chain from there on. The hash is an HMAC-SHA256 under a key derived
from the master keys, which are not in the database: whoever can write the database cannot
recompute the chain over an edit. Entries written before keying began (migration 0006) keep their
plain SHA-256 hashes; ``audit_chain.keyed_from`` marks where keyed entries begin.

Deleting the newest entries leaves an intact, shorter chain: a :class:`Checkpoint` (the head's seq
and hash, kept outside Beacon) is what shows it.

Entries name actors, actions and record ids: never personal data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from registry import schema
from registry.crypto import KeyringError, MasterKeys

GENESIS = "0" * 64
# The HKDF purpose of the chain's keys: changing it would orphan every keyed entry.
PURPOSE = "audit-chain"
log = structlog.get_logger("beacon.audit")
# Built once: every consent and profile change appends an entry.
_LOCK = text("SELECT pg_advisory_xact_lock(7466354)")
_LAST = select(schema.audit_log.c.seq, schema.audit_log.c.hash).order_by(schema.audit_log.c.seq.desc()).limit(1)
_INSERT = schema.audit_log.insert()


@dataclass(frozen=True)
class ChainKeys:
    """The chain's HMAC keys by master key id; new entries are keyed under ``active``."""

    keys: Mapping[str, bytes]
    active: str

    @classmethod
    def of(cls, master: MasterKeys) -> ChainKeys:
        """The keys derived from ``master``: the same in every process that has the same master keys."""
        return cls(master.derive(PURPOSE), master.active)


# Set once at start by every process that appends or verifies (serve, worker, each CLI command).
_process_keys: ChainKeys | None = None


def use(master: MasterKeys) -> None:
    """Key this process's appends and checks with the keys derived from ``master``."""
    global _process_keys
    _process_keys = ChainKeys.of(master)


def _keys() -> ChainKeys:
    if _process_keys is None:
        raise KeyringError("the audit log's key is not loaded (audit.use was not called)")
    return _process_keys


@dataclass(frozen=True)
class Checkpoint:
    """An entry's seq and hash, kept outside Beacon: the log must still reach it, unchanged."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"seq={self.seq} hash={self.hash}"


def _digest(seq: int, at: str, actor: str, action: str, subject: str | None, detail: str, prev: str,
            key: bytes | None = None) -> str:
    """The entry's hash: HMAC-SHA256 under ``key``, or plain SHA-256 for entries from before keying."""
    material = json.dumps([seq, at, actor, action, subject, detail, prev], ensure_ascii=False,
                          separators=(",", ":")).encode()
    if key is None:
        return hashlib.sha256(material).hexdigest()
    return hmac.new(key, material, hashlib.sha256).hexdigest()


async def _append(conn: AsyncConnection, actor: str, action: str, subject: str | None,
                  detail: dict[str, object] | None) -> Checkpoint:
    keys = _keys()
    if conn.dialect.name == "postgresql":
        await conn.execute(_LOCK)
    last = (await conn.execute(_LAST)).first()
    seq = (last.seq + 1) if last else 1
    prev = last.hash if last else GENESIS
    at = datetime.now(UTC)
    body = json.dumps(detail or {}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = _digest(seq, at.isoformat(), actor, action, subject, body, prev, keys.keys[keys.active])
    await conn.execute(_INSERT, {"seq": seq, "at": at, "actor": actor, "action": action, "subject": subject,
                                 "detail": body, "prev_hash": prev, "hash": digest, "key_id": keys.active})
    # The hash in the service log is an outside anchor: truncating the table's tail shows against it.
    log.info("audit.appended", seq=seq, action=action, hash=digest)
    return Checkpoint(seq, digest)


async def append(conn: AsyncConnection, actor: str, action: str, subject: str | None = None,
                 detail: dict[str, object] | None = None) -> int:
    """Add one entry inside the caller's transaction; returns its sequence number."""
    return (await _append(conn, actor, action, subject, detail)).seq


async def checkpoint(conn: AsyncConnection, actor: str) -> Checkpoint:
    """Append an ``audit.checkpoint`` entry and return it as the head to keep outside Beacon."""
    head = await _append(conn, actor, "audit.checkpoint", None, None)
    log.info("audit.checkpoint", seq=head.seq, hash=head.hash)
    return head


async def head(conn: AsyncConnection) -> Checkpoint:
    """The newest entry's seq and hash (seq 0 and the genesis hash for an empty log)."""
    last = (await conn.execute(_LAST)).first()
    return Checkpoint(last.seq, last.hash) if last else Checkpoint(0, GENESIS)


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


def _problem(row: Any, prev: str, keyed_from: int, keys: ChainKeys, expect: Checkpoint | None) -> str | None:
    """Why ``row`` does not hold after an entry hashed ``prev``; None when it does."""
    if row.prev_hash != prev:
        return "previous-hash link does not match"
    key: bytes | None = None
    if row.seq < keyed_from:
        if row.key_id is not None:
            return "entry was altered"
    elif row.key_id is None:
        return "entry is not keyed, though keyed entries began before it"
    else:
        key = keys.keys.get(row.key_id)
        if key is None:
            return f"entry needs master key {row.key_id!r}, which is not configured"
    if _digest(row.seq, _iso(row.at), row.actor, row.action, row.subject, row.detail, prev, key) != row.hash:
        return "entry was altered"
    if expect is not None and row.seq == expect.seq and row.hash != expect.hash:
        return "entry differs from the checkpoint: the log was rewritten"
    return None


async def verify(conn: AsyncConnection, expect: Checkpoint | None = None) -> Verdict:
    """Walk the whole chain; report the first entry that does not hold.

    With ``expect`` (a checkpoint kept outside Beacon), the log must also still reach the
    checkpoint's entry with the same hash: a removed tail or a rewritten log shows there.
    """
    keys = _keys()
    # Without the marker (someone removed it) every entry must be keyed.
    keyed_from = (await conn.execute(select(schema.audit_chain.c.keyed_from).limit(1))).scalar() or 1
    prev = GENESIS
    count = 0
    total = (await conn.execute(select(func.count()).select_from(schema.audit_log))).scalar_one()
    result = await conn.stream(select(schema.audit_log).order_by(schema.audit_log.c.seq))
    async for row in result:
        count += 1
        if row.seq != count:
            return Verdict(False, total, count, f"entry {count} is missing")
        problem = _problem(row, prev, keyed_from, keys, expect)
        if problem:
            return Verdict(False, total, row.seq, problem)
        prev = row.hash
    if expect is not None and count < expect.seq:
        return Verdict(False, total, count + 1, f"the log ends at entry {count}, before the checkpoint's "
                                                f"entry {expect.seq}: newer entries were removed")
    return Verdict(True, count)
