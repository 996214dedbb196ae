"""Delivery reports (status callbacks) applied to the outbox: states only move forward, a failure queues the
channel's fallback once, and a call that was busy or not answered is queued again with a doubling wait."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from campaigns import outbox
from campaigns.outbox import Draft
from channels.base import Provider, StatusUpdate
from registry import schema
from registry.crypto import KeyRing

PROGRESS = {"sent": 1, "delivered": 2, "read": 3}  # delivery states that only move forward
FAILED = ("failed", "undelivered")
CALL_AGAIN = frozenset({"busy", "no-answer"})  # call statuses after which the person is called again later


@dataclass(frozen=True)
class CallRetries:
    """How often one message is called again when the line is busy or nobody answers, and how long between."""

    attempts: int = 3  # calls for one message at most
    retry_seconds: float = 300.0  # before the second call; doubled for each further one


@dataclass(frozen=True)
class Applied:
    """What applying a report did: whether its row was found, whether something new waits in the outbox."""

    found: bool
    queued: bool = False


async def apply_report(conn: AsyncConnection, keys: KeyRing, update_: StatusUpdate, channel: Provider | None,
                       calls: CallRetries, *, default_language: str) -> Applied:
    """Apply one report to the outbox row with its provider id, inside ``conn``'s transaction."""
    o = schema.outbox.c
    row = (await conn.execute(select(schema.outbox).where(o.provider_id == update_.provider_id))).first()
    if row is None:
        return Applied(found=False)
    if update_.status in CALL_AGAIN:
        if row.status == "sent":  # a repeated report must not call twice
            return Applied(found=True, queued=await _call_again(conn, row, update_, calls))
        return Applied(found=True)
    # The provider's "queued" means it has the message: for the outbox it has left ("sent").
    # Writing "queued" would put it back in our own queue and send it again.
    status = "sent" if update_.status == "queued" else update_.status
    # Callbacks arrive out of order: never move a message back (delivered -> sent, read -> delivered).
    if PROGRESS.get(status, 0) and PROGRESS.get(row.status, 0) >= PROGRESS[status]:
        status = row.status
    await conn.execute(update(schema.outbox).where(o.id == row.id).values(
        status=status, error_code=update_.error_code or row.error_code, updated_at=datetime.now(UTC)))
    failed_now = status in FAILED and row.status not in FAILED  # a repeated callback falls back once
    if failed_now and channel is not None and row.body_ct:
        original = outbox.to_outbound(keys, dict(row._mapping), default_language)
        replacement = channel.fallback_for(update_, original)
        if replacement is not None:
            await outbox.enqueue(conn, keys, [Draft(
                row.registrant_id, row.identity_id, replacement.channel, replacement.address,
                replacement.text, template=replacement.template, broadcast_id=row.broadcast_id)])
            return Applied(found=True, queued=True)
    return Applied(found=True)


async def _call_again(conn: AsyncConnection, row: Any, update_: StatusUpdate, calls: CallRetries) -> bool:
    """Queue a busy or unanswered call again after a doubling wait, until the attempts run out (then
    undelivered: the person counts as not having replied). True when it was queued again."""
    o = schema.outbox.c
    now = datetime.now(UTC)
    attempts = int(row.attempts)
    if attempts >= calls.attempts:
        await conn.execute(update(schema.outbox).where(o.id == row.id).values(
            status="undelivered", error_code=update_.status, updated_at=now))
        return False
    wait = timedelta(seconds=calls.retry_seconds * 2 ** (attempts - 1))
    await conn.execute(update(schema.outbox).where(o.id == row.id, o.status != "cancelled").values(
        status="queued", error_code=update_.status, next_attempt_at=now + wait, updated_at=now))
    return True
