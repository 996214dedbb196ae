"""The one sender loop: claim due outbox rows, send them, record what happened.

The loop keeps up to ``capacity`` messages in flight (``concurrency`` of them
talking to a provider at once, the rest waiting on a rate limiter) and claims
more as soon as there is room, so one slow or rate-limited send never holds up
the rest. Each outcome is written within ``flush_every`` seconds of its send,
many per transaction: the provider id is in the row before the provider's
status callbacks can look for it. Leases of messages still in flight are
renewed, so only a process that died loses its claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from prometheus_client import Counter
from sqlalchemy import bindparam, update

from campaigns import outbox
from channels.base import Provider, SendError, Sent
from registry import schema
from registry.db import Database
from registry.keys import KeyHolder
from registry.times import aware

log = structlog.get_logger("beacon.sender")
SENT = Counter("beacon_outbound_total", "Outbound messages by channel and result", ["channel", "result"])

# Transient failures are retried for this long (a provider outage of hours loses nothing), then fail.
GIVE_UP_AFTER = timedelta(hours=24)
BACKOFF_BASE = 2.0  # seconds
BACKOFF_CAP = 600.0
# Provider states that mean "accepted, on its way": for the outbox the message has left ("sent").
# Keeping the provider's "queued" would put the row back in our own queue and send it again.
ACCEPTED = frozenset({"queued", "accepted", "sending"})
IDLE_RECHECK = 0.05  # seconds wait_idle waits for the loop before looking at the outbox again
HELD_PAUSE = 0.1  # seconds between claims while the process holds back for inbound webhooks
HELD_BATCH = 10  # rows per claim meanwhile


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter; a provider's Retry-After is a floor."""
    delay = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(attempt - 1, 0)))
    return max(delay, retry_after or 0.0)


@dataclass(slots=True)
class SendResult:
    """What one send attempt did to its row."""

    id: int
    status: str
    ref: str  # the row's random ref: an id alone may name a newer row once this one was erased (SQLite)
    provider_id: str | None = None
    error_code: str | None = None
    next_attempt_at: datetime | None = None
    identity_id: int | None = None
    registrant_id: int | None = None
    unreachable: bool = False
    opted_out: bool = False
    erased: bool = False  # the registrant is gone: empty the row once the message has left
    waited: bool = False  # not tried: an earlier message to the same person is waiting for a retry


def _never() -> bool:
    return False


class Sender:
    """Drains the outbox through the channels: many sends in flight, outcomes written in small batches."""

    def __init__(self, db: Database, keys: KeyHolder, providers: dict[str, Provider], *, batch: int = 500,
                 concurrency: int = 200, capacity: int = 2000, flush_every: float = 0.02,
                 lease: timedelta = outbox.LEASE, default_language: str = "en") -> None:
        self.db = db
        self.keys = keys
        self.providers = providers  # by the channel each carries
        self.batch = batch  # rows per claim
        self.capacity = capacity  # rows held by this process at once (sending, rate-limited or unrecorded)
        self.flush_every = flush_every
        self.lease = lease
        self.default_language = default_language  # for the labels of messages queued without one
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self.also_wake: list[Callable[[], None]] = []  # told on each wake(): e.g. the workers of other processes
        # refs of rows claimed by this process and not yet recorded (a row id can be reused on SQLite once
        # its row was erased: the random ref cannot)
        self._held: set[str] = set()
        self._claiming = 0  # claims under way: their rows are claimed in the database, not yet held
        self._tasks: set[asyncio.Task[SendResult]] = set()
        # The last send started to each (channel, identity): the next one to the same person waits for it.
        self._chains: dict[tuple[str, int], asyncio.Task[SendResult]] = {}
        self._done: list[SendResult] = []
        self._has_done = asyncio.Event()
        self._next_retry: float | None = None  # time.monotonic() of this process's earliest retry
        self._settled = asyncio.Event()  # set after each claim that found nothing and each write of outcomes
        # Whether to hold back for now: a burst of inbound webhooks shares this process's event loop,
        # and a webhook cannot wait (the service sets this to its burst test).
        self.hold_back: Callable[[], bool] = _never

    @property
    def in_flight(self) -> int:
        """Rows this process has claimed and not yet recorded."""
        return len(self._held)

    def wake(self) -> None:
        """Tell the loop there is something new to send."""
        self._wake.set()
        for tell in self.also_wake:
            tell()

    async def wait_idle(self) -> None:
        """Return once this process holds no row and none is due in the outbox (a later retry may wait).

        Needs :meth:`run` going. Rows leased by another live process are theirs, not due.
        """
        while self._busy() or await outbox.any_due(self.db) or self._busy():  # a claim may end meanwhile
            self._settled.clear()
            self.wake()
            # Rows queued by another process wake nobody here: look again after a short while.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), timeout=IDLE_RECHECK)

    async def run(self, stop: asyncio.Event, idle: float = 1.0, grace: float = 5.0) -> None:
        """Send until ``stop`` is set; poll every ``idle`` seconds for work queued by other processes.

        On stop, sends already under way get ``grace`` seconds to finish and be recorded; the rest
        keep their (no longer renewed) lease and are sent by the next process once it ends.
        """
        recorder = asyncio.create_task(self._record_loop())
        try:
            while not stop.is_set():
                limit = self.batch
                if self.hold_back():  # a trickle meanwhile: the messages in flight keep going anyway
                    await asyncio.sleep(HELD_PAUSE)
                    limit = HELD_BATCH
                try:
                    claimed = await self._fill(limit)
                except Exception:  # noqa: BLE001 - the loop must survive a database hiccup
                    log.exception("sender.claim_failed")
                    claimed = 0
                if claimed:
                    await asyncio.sleep(0)  # let the new sends start before claiming more
                    continue
                self._settled.set()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._sleep(idle))
        finally:
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=grace)
            for task in list(self._tasks):
                task.cancel()
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder
            await self._flush()

    async def drain_once(self) -> int:
        """Claim one batch, send it, record the outcomes; returns how many were claimed."""
        rows = await self._claim(self.batch)
        self._held.update(r["ref"] for r in rows)
        await asyncio.gather(*(self._start(row) for row in rows))
        await self._flush()
        return len(rows)

    def _sleep(self, idle: float) -> float:
        """Seconds until the next poll: ``idle``, or sooner when one of our retries falls due."""
        if self._next_retry is None:
            return idle
        return min(idle, max(0.0, self._next_retry - time.monotonic()))

    async def _fill(self, limit: int) -> int:
        """Claim as many due rows as there is room for (``limit`` at most) and start sending them."""
        room = self.capacity - len(self._held)
        if room <= 0:
            return 0
        if self._next_retry is not None and self._next_retry <= time.monotonic():
            self._next_retry = None
        rows = await self._claim(min(limit, room))
        for row in rows:
            if row["ref"] in self._held:  # our own lease ran out under a stalled loop; the send is still ours
                continue
            self._held.add(row["ref"])
            task = self._start(row)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(rows)

    def _busy(self) -> bool:
        """Whether this process is claiming, sending or recording."""
        return bool(self._held or self._done or self._claiming)

    async def _claim(self, limit: int) -> list[dict[str, Any]]:
        self._claiming += 1
        try:
            return await outbox.claim(self.db, limit, self.lease)
        finally:
            self._claiming -= 1

    def _start(self, row: dict[str, Any]) -> asyncio.Task[SendResult]:
        """Start sending one row, after the messages already under way to the same person."""
        key = (str(row["channel"]), int(row["identity_id"])) if row["identity_id"] else None
        task = asyncio.create_task(self._send_and_keep(row, self._chains.get(key) if key else None))
        if key is not None:
            self._chains[key] = task

            def release(done: asyncio.Task[SendResult], key: tuple[str, int] = key) -> None:
                if self._chains.get(key) is done:
                    del self._chains[key]

            task.add_done_callback(release)
        return task

    async def _send_and_keep(self, row: dict[str, Any], before: asyncio.Task[SendResult] | None) -> SendResult:
        earlier = await asyncio.shield(before) if before is not None else None
        if earlier is not None and earlier.status == "queued":
            # An earlier message to this person waits for a retry: this one waits with it, so
            # a person never reads the second question before the first.
            outcome = SendResult(int(row["id"]), "queued", ref=row["ref"], next_attempt_at=earlier.next_attempt_at,
                                 identity_id=row["identity_id"], registrant_id=row["registrant_id"], waited=True)
        else:
            outcome = await self._send(row)
        # Only now look up the buffer: _flush swaps in a new list while sends are under way.
        self._done.append(outcome)
        self._has_done.set()
        return outcome

    async def _record_loop(self) -> None:
        """Write outcomes as they come (batched over ``flush_every``); renew the leases still held."""
        renew_every = self.lease.total_seconds() / 3
        renew_at = time.monotonic() + renew_every
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._has_done.wait(), timeout=max(0.0, renew_at - time.monotonic()))
                await asyncio.sleep(self.flush_every)
            try:
                await self._flush()
                if time.monotonic() >= renew_at:
                    await self._renew()
                    renew_at = time.monotonic() + renew_every
            except Exception:  # noqa: BLE001 - outcomes stay buffered and are written on the next round
                log.exception("sender.record_failed")
                await asyncio.sleep(min(1.0, renew_every))

    async def _flush(self) -> None:
        """Record the buffered outcomes in one transaction; on failure they stay buffered."""
        outcomes, self._done = self._done, []
        self._has_done.clear()
        if not outcomes:
            return
        try:
            await self._record(outcomes)
        except BaseException:
            self._done[:0] = outcomes
            self._has_done.set()
            raise
        self._held.difference_update(x.ref for x in outcomes)
        self._settled.set()
        retries = [x.next_attempt_at for x in outcomes if x.status == "queued" and x.next_attempt_at]
        if retries:
            at = time.monotonic() + max(0.0, (min(retries) - datetime.now(UTC)).total_seconds())
            self._next_retry = at if self._next_retry is None else min(self._next_retry, at)
            self._wake.set()  # the loop recomputes how long to sleep
        elif len(self._held) < self.capacity:
            self._wake.set()  # room again: claim more if the loop stopped at capacity

    async def _renew(self) -> None:
        """Extend the lease of every row this process still holds."""
        if not self._held:
            return
        o = schema.outbox.c
        now = datetime.now(UTC)
        held = list(self._held)
        async with self.db.write() as conn:
            for start in range(0, len(held), 500):
                await conn.execute(update(schema.outbox).where(o.ref.in_(held[start:start + 500]),
                                                              o.status == "claimed")
                                   .values(lease_until=now + self.lease))

    async def _send(self, row: dict[str, Any]) -> SendResult:
        row_id = int(row["id"])
        erased = row["registrant_id"] is None
        base = {"ref": row["ref"], "identity_id": row["identity_id"], "registrant_id": row["registrant_id"],
                "erased": erased}
        channel = self.providers.get(str(row["channel"]))
        if channel is None:
            SENT.labels(str(row["channel"]), "no_channel").inc()
            return SendResult(row_id, "failed", error_code="no_channel", **base)
        kind = str(row["channel"])
        try:
            message = outbox.to_outbound(self.keys.ring, row, self.default_language)
            async with self._slots:
                sent: Sent = await channel.send(message)
        except SendError as exc:
            attempts = int(row["attempts"]) + 1
            if exc.permanent or datetime.now(UTC) - aware(row["created_at"]) > GIVE_UP_AFTER:
                SENT.labels(kind, "failed").inc()
                log.warning("sender.failed", outbox_id=row_id, code=exc.code, attempts=attempts)
                return SendResult(row_id, "failed", error_code=exc.code, unreachable=exc.unreachable,
                               opted_out=exc.opted_out, **base)
            SENT.labels(kind, "retry").inc()
            at = datetime.now(UTC) + timedelta(seconds=backoff(attempts, exc.retry_after))
            return SendResult(row_id, "queued", error_code=exc.code, next_attempt_at=at, **base)
        except Exception as exc:  # noqa: BLE001 - an unexpected failure is retried, never lost
            log.warning("sender.error", outbox_id=row_id, error=type(exc).__name__)
            at = datetime.now(UTC) + timedelta(seconds=backoff(int(row["attempts"]) + 1))
            return SendResult(row_id, "queued", error_code="internal", next_attempt_at=at, **base)
        SENT.labels(kind, "sent").inc()
        status = "sent" if sent.status in ACCEPTED else sent.status
        return SendResult(row_id, status, provider_id=sent.provider_id, **base)

    async def _record(self, outcomes: list[SendResult]) -> None:
        now = datetime.now(UTC)
        o = schema.outbox
        params = [{
            "_id": x.id, "_ref": x.ref, "_status": x.status, "_provider_id": x.provider_id, "_error": x.error_code,
            "_next": x.next_attempt_at or now,
        } for x in outcomes]
        async with self.db.write() as conn:
            await conn.execute(
                update(o).where(o.c.id == bindparam("_id"), o.c.ref == bindparam("_ref")).values(
                    status=bindparam("_status"), provider_id=bindparam("_provider_id"), error_code=bindparam("_error"),
                    next_attempt_at=bindparam("_next"), lease_until=None, updated_at=now),
                params)
            for x in outcomes:
                if x.status == "queued" and x.identity_id and x.next_attempt_at:
                    # Later messages to the same person wait until this one has gone.
                    await conn.execute(update(o).where(
                        o.c.identity_id == x.identity_id, o.c.status == "queued", o.c.id > x.id,
                        o.c.next_attempt_at < x.next_attempt_at).values(next_attempt_at=x.next_attempt_at))
            waited = [x.ref for x in outcomes if x.waited]
            if waited:  # the claim counted an attempt that was never made
                await conn.execute(update(o).where(o.c.ref.in_(waited)).values(attempts=o.c.attempts - 1))
            left = [x.ref for x in outcomes if x.erased and x.status != "queued"]
            if left:
                await conn.execute(update(o).where(o.c.ref.in_(left)).values(address_ct=None, body_ct=None))
            for x in outcomes:
                if x.unreachable and x.identity_id:
                    await conn.execute(update(schema.identities).where(schema.identities.c.id == x.identity_id)
                                       .values(reachable=False, error_code=x.error_code))
                if x.opted_out and x.registrant_id:
                    await conn.execute(update(schema.registrants).where(schema.registrants.c.id == x.registrant_id)
                                       .values(opted_out=True))
