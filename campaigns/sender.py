"""The one sender loop: claim due outbox rows, send them, record what happened."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from prometheus_client import Counter
from sqlalchemy import bindparam, update

from campaigns import outbox
from channels.base import Channel, SendError, Sent
from registry import schema
from registry.db import Database
from registry.keys import KeyHolder

log = structlog.get_logger("beacon.sender")
SENT = Counter("beacon_outbound_total", "Outbound messages by channel and result", ["channel", "result"])

MAX_ATTEMPTS = 8
BACKOFF_BASE = 2.0  # seconds
BACKOFF_CAP = 600.0


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter; a provider's Retry-After is a floor."""
    delay = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(attempt - 1, 0)))
    return max(delay, retry_after or 0.0)


@dataclass(slots=True)
class Outcome:
    """What one send attempt did to its row."""

    id: int
    status: str
    provider_id: str | None = None
    error_code: str | None = None
    next_attempt_at: datetime | None = None
    identity_id: int | None = None
    registrant_id: int | None = None
    unreachable: bool = False
    opted_out: bool = False
    erased: bool = False  # the registrant is gone: empty the row once the message has left


class Sender:
    """Drains the outbox through the channels, many sends in flight, one database write per batch."""

    def __init__(self, db: Database, keys: KeyHolder, channels: dict[str, Channel], *, batch: int = 500,
                 concurrency: int = 200) -> None:
        self.db = db
        self.keys = keys
        self.channels = channels  # by channel kind
        self.batch = batch
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Tell the loop there is something new to send."""
        self._wake.set()

    async def run(self, stop: asyncio.Event, idle: float = 1.0) -> None:
        """Send until ``stop`` is set; poll every ``idle`` seconds for work queued by other processes."""
        while not stop.is_set():
            try:
                sent = await self.drain_once()
            except Exception:  # noqa: BLE001 - the loop must survive a database hiccup
                log.exception("sender.batch_failed")
                sent = 0
            if sent:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=idle)
            except TimeoutError:
                pass

    async def drain_once(self) -> int:
        """Claim one batch, send it, record the outcomes; returns how many were claimed."""
        rows = await outbox.claim(self.db, self.batch)
        if not rows:
            return 0
        outcomes = await asyncio.gather(*(self._send(row) for row in rows))
        await self._record(list(outcomes))
        return len(rows)

    async def _send(self, row: dict[str, object]) -> Outcome:
        row_id = int(row["id"])  # type: ignore[call-overload]
        erased = row["registrant_id"] is None
        base = {"identity_id": row["identity_id"], "registrant_id": row["registrant_id"], "erased": erased}
        channel = self.channels.get(str(row["channel"]))
        if channel is None:
            SENT.labels(str(row["channel"]), "no_channel").inc()
            return Outcome(row_id, "failed", error_code="no_channel", **base)  # type: ignore[arg-type]
        try:
            message = outbox.to_outbound(self.keys.ring, row)
            async with self._slots:
                sent: Sent = await channel.send(message)
        except SendError as exc:
            attempts = int(row["attempts"]) + 1  # type: ignore[call-overload]
            if exc.permanent or attempts >= MAX_ATTEMPTS:
                SENT.labels(message.channel, "failed").inc()
                log.warning("sender.failed", outbox_id=row_id, code=exc.code, attempts=attempts)
                return Outcome(row_id, "failed", error_code=exc.code, unreachable=exc.unreachable,
                               opted_out=exc.opted_out, **base)  # type: ignore[arg-type]
            SENT.labels(message.channel, "retry").inc()
            at = datetime.now(UTC) + timedelta(seconds=backoff(attempts, exc.retry_after))
            return Outcome(row_id, "queued", error_code=exc.code, next_attempt_at=at, **base)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - an unexpected failure is retried, never lost
            log.warning("sender.error", outbox_id=row_id, error=type(exc).__name__)
            at = datetime.now(UTC) + timedelta(seconds=backoff(int(row["attempts"]) + 1))  # type: ignore[call-overload]
            return Outcome(row_id, "queued", error_code="internal", next_attempt_at=at, **base)  # type: ignore[arg-type]
        SENT.labels(message.channel, "sent").inc()
        return Outcome(row_id, sent.status, provider_id=sent.provider_id, **base)  # type: ignore[arg-type]

    async def _record(self, outcomes: list[Outcome]) -> None:
        now = datetime.now(UTC)
        o = schema.outbox
        params = [{
            "_id": x.id, "_status": x.status, "_provider_id": x.provider_id, "_error": x.error_code,
            "_next": x.next_attempt_at or now,
        } for x in outcomes]
        async with self.db.write() as conn:
            await conn.execute(
                update(o).where(o.c.id == bindparam("_id")).values(
                    status=bindparam("_status"), provider_id=bindparam("_provider_id"), error_code=bindparam("_error"),
                    next_attempt_at=bindparam("_next"), lease_until=None, updated_at=now),
                params)
            left = [x.id for x in outcomes if x.erased and x.status != "queued"]
            if left:
                await conn.execute(update(o).where(o.c.id.in_(left)).values(address_ct=None, body_ct=None))
            for x in outcomes:
                if x.unreachable and x.identity_id:
                    await conn.execute(update(schema.identities).where(schema.identities.c.id == x.identity_id)
                                       .values(reachable=False, error_code=x.error_code))
                if x.opted_out and x.registrant_id:
                    await conn.execute(update(schema.registrants).where(schema.registrants.c.id == x.registrant_id)
                                       .values(opted_out=True))
