"""The path of one message: store it, run the conversation, queue the replies.

channel -> :meth:`Service.receive` (one transaction: dedupe, store) ->
:meth:`Service.process` (next transaction: state, bot, effects, outbox) ->
the sender. A crash between the two leaves an unprocessed row that
:meth:`Service.recover` picks up.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection
from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential_jitter

from beacon import claims, effects
from bot import machine
from bot.state import BotConfig, Message, Reply, Transition
from campaigns import delivery, family, outbox, signup
from campaigns.outbox import Draft
from campaigns.sender import Sender
from channels.base import Inbound, Provider, StatusUpdate
from domain.vocabulary import ChannelKind
from registry import audit, dead_letter, invitation_links, schema, sources, store
from registry.crypto import KeyringError
from registry.db import Database
from registry.keys import KeyHolder, identity_aad, inbound_aad

log = structlog.get_logger("beacon.service")
INBOUND = Counter("beacon_inbound_total", "Inbound messages by channel and outcome", ["channel", "outcome"])
STEP_SECONDS = Histogram("beacon_process_seconds", "Time to process one stored inbound message")
DEAD_LETTERS = Counter("beacon_inbound_dead_letter_total", "Inbound messages set aside after failing too often",
                       ["channel"])
DEAD_LETTER_WAITING = Gauge("beacon_inbound_dead_letter_waiting", "Inbound messages set aside, not processed")
STATUS = Counter("beacon_status_callbacks_total", "Delivery status callbacks by status", ["status"])
STATUS_RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0)  # seconds; a report for an unknown id is dropped after
STORE_BATCH = 256  # inbound messages stored per transaction at most
PROCESS_YIELD = 0.25  # seconds a background step waits at most for webhooks being stored
BURST_RATE = 500.0  # inbound messages a second beyond which webhooks go first and the bot catches up after
RATE_WINDOW = 0.2  # seconds the inbound rate is averaged over
PROCESS_ATTEMPTS = 4  # tries of one message (a busy database, a rotation) before the sweep takes it over
SWEEP_SECONDS = 60.0  # how often unprocessed messages older than this are looked for again
# Failed tries, the immediate ones and the sweep's, before a message is set aside (a dead letter):
# four sweeps, minutes apart, outlast a passing fault; what fails that long is a bug or bad data.
DEAD_LETTER_AFTER = PROCESS_ATTEMPTS + 4
STEP_PAUSE = 0.001  # seconds between background steps, for the event loop to read waiting webhooks
# While webhooks keep arriving, the bot takes at most this share of the event loop's time: a batch
# is a direct call that holds the loop (SQLite), and a bot running flat out would leave webhooks
# waiting in turn, which lowers the measured arrival rate that BURST_RATE looks at.
BOT_SHARE = 0.25
ARRIVING_RATE = 5.0  # inbound messages a second from which webhooks count as arriving
BATCH_WHILE_ARRIVING = 8  # messages per batch while webhooks arrive: a shorter hold of the loop
PROCESS_CONCURRENCY = 8  # messages processed at once on PostgreSQL (SQLite has one writer: 1)
PROCESS_BATCH = 32  # stored messages processed per transaction at most (group commit, as for storing)


# Built once: a message's step runs it every time.
_LOAD_IDENTITY = select(schema.identities).where(schema.identities.c.id == bindparam("_id"))


class Service:
    """Wires the registry, the conversation and the outbox together."""

    def __init__(self, db: Database, keys: KeyHolder, bot: BotConfig, providers: dict[str, Provider],
                 sender: Sender, *, family_channel: str | None = "simulator", call_attempts: int = 3,
                 call_retry_seconds: float = 300.0) -> None:
        self.db = db
        self.calls = delivery.CallRetries(call_attempts, call_retry_seconds)
        self.family_channel = family_channel  # where messages to family contacts go
        self.keys = keys
        self.bot = bot
        self.providers = providers
        self.sender = sender
        self._tasks: set[asyncio.Task[None]] = set()  # backlog workers
        self._status_tasks: set[asyncio.Task[None]] = set()
        self._draining = 0  # backlog workers that have not yet seen the backlog empty
        self._activity = 0  # messages being stored or processed, workers and delivery reports under way
        self._idle = asyncio.Event()
        self._idle.set()
        self._arrivals: list[tuple[str, Inbound, asyncio.Future[store.Stored | None]]] = []
        self._storer: asyncio.Task[None] | None = None
        self._arrival_rate = 0.0  # inbound messages a second, as of _rate_at (see inbound_rate)
        self._rate_at = time.monotonic()
        self._backlog: collections.deque[tuple[str, store.Stored, Inbound]] = collections.deque()
        self._to_process: list[tuple[int, asyncio.Future[list[Reply]]]] = []  # handle()'s, grouped
        self._processor: asyncio.Task[None] | None = None
        self._workers = 1 if db.sqlite else PROCESS_CONCURRENCY  # SQLite has one writer: one at a time, in order
        sender.hold_back = self.inbound_burst  # webhooks first, sends after

    async def receive(self, provider: str, message: Inbound) -> store.Stored | None:
        """Store one inbound message; None when it was seen before.

        Messages arriving together share one transaction (group commit): each caller gets its
        answer once that transaction has committed, so a webhook is still answered only after its
        message is stored, but a burst costs one commit instead of one per message.
        """
        self._arrival_rate = self.inbound_rate() + 1 / RATE_WINDOW
        self._rate_at = time.monotonic()
        with self._active():
            await self.keys.check(self.db)  # follow a key rotation done by another process
            future: asyncio.Future[store.Stored | None] = asyncio.get_running_loop().create_future()
            self._arrivals.append((provider, message, future))
            if self._storer is None or self._storer.done():
                self._storer = asyncio.create_task(self._store_arrivals())
            stored = await future
        INBOUND.labels(message.channel, "stored" if stored else "duplicate").inc()
        return stored

    async def _store_arrivals(self) -> None:
        """Store everything that arrived, batch after batch, until nothing is waiting."""
        try:
            while self._arrivals:
                batch, self._arrivals = self._arrivals[:STORE_BATCH], self._arrivals[STORE_BATCH:]
                try:
                    results: list[store.Stored | None | BaseException] = list(await self._store(batch))
                except Exception:  # noqa: BLE001 - one bad message must not fail the others: one by one
                    results = []
                    for item in batch:
                        try:
                            results.extend(await self._store([item]))
                        except Exception as exc:  # noqa: BLE001 - handed to that message's caller
                            results.append(exc)
                for (_, _, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            for _, _, future in self._arrivals:  # only if this task itself was cancelled
                if not future.done():
                    future.set_exception(RuntimeError("inbound storage stopped"))

    async def _store(self, batch: list[tuple[str, Inbound, asyncio.Future[store.Stored | None]]]
                     ) -> list[store.Stored | None]:
        async with self.db.write() as conn:
            return await store.store_inbound(conn, self.keys.ring, [(p, m) for p, m, _ in batch])

    def inbound_burst(self) -> bool:
        """Whether webhooks arrive faster than the bot could follow (BURST_RATE): background work waits."""
        return self.inbound_rate() >= BURST_RATE

    def inbound_rate(self) -> float:
        """Inbound messages per second lately (an exponentially decaying average over RATE_WINDOW)."""
        return self._arrival_rate * math.exp(-(time.monotonic() - self._rate_at) / RATE_WINDOW)

    async def _inbound_first(self, busy: float) -> None:
        """Between background steps, let webhooks in first: the bot can wait, Twilio cannot.

        A step may not pause at all (SQLite writes are direct calls), so the loop first gets to read
        and store the webhooks that arrived meanwhile: while they keep arriving, for three times as
        long as the last step took (``busy`` seconds), so that the bot takes at most BOT_SHARE of
        the time. Beyond BURST_RATE messages a second, more than the bot could keep up with anyway,
        webhooks are answered first and the bot catches up after the burst, still taking a step
        every PROCESS_YIELD seconds meanwhile.
        """
        pause = STEP_PAUSE
        if self.inbound_rate() >= ARRIVING_RATE:
            pause = max(pause, min(PROCESS_YIELD, busy * (1 - BOT_SHARE) / BOT_SHARE))
        await asyncio.sleep(pause)
        deadline = time.monotonic() + PROCESS_YIELD
        while self.inbound_burst() and time.monotonic() < deadline:
            await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))

    def process_later(self, provider: str, stored: store.Stored, message: Inbound) -> None:
        """Process after the webhook has been answered, in arrival order (workers drain a backlog)."""
        self._backlog.append((provider, stored, message))
        if self._draining < self._workers:
            self._draining += 1
            self._spawn(self._drain_backlog(), self._tasks)

    def acknowledge_later(self, provider: str, stored: store.Stored, message: Inbound) -> None:
        """The provider's follow-up of a message another process will process, in the background."""
        self._spawn(self._acknowledge(provider, stored, message), self._tasks)

    async def _drain_backlog(self) -> None:
        # Counted out in the same step that finds the backlog empty: a message appended after that
        # gets a worker of its own, never a worker that is about to end.
        busy = 0.0
        try:
            while self._backlog:
                await self._inbound_first(busy)
                size = BATCH_WHILE_ARRIVING if self.inbound_rate() >= ARRIVING_RATE else PROCESS_BATCH
                batch = [self._backlog.popleft() for _ in range(min(size, len(self._backlog)))]
                if not batch:
                    continue
                started = time.perf_counter()
                results = await self.process_batch([stored.inbound_id for _, stored, _ in batch])
                busy = time.perf_counter() - started
                for (provider, stored, message), result in zip(batch, results, strict=True):
                    if isinstance(result, BaseException):  # tried once alone: the rest of its tries
                        await self._process_and_acknowledge(provider, stored, message, tried=1)
                    else:
                        await self._acknowledge(provider, stored, message)
        finally:
            self._draining -= 1

    def _spawn(self, work: Coroutine[Any, Any, None], tasks: set[asyncio.Task[None]]) -> None:
        """Run ``work`` in the background, counted as activity until it ends (or is cancelled)."""
        self._begin()
        task = asyncio.create_task(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(lambda _: self._end())

    def _begin(self) -> None:
        self._activity += 1
        self._idle.clear()

    def _end(self) -> None:
        self._activity -= 1
        if not self._activity:
            self._idle.set()

    @contextlib.contextmanager
    def _active(self) -> Iterator[None]:
        self._begin()
        try:
            yield
        finally:
            self._end()

    @property
    def idle(self) -> bool:
        """Whether nothing is being stored or processed and no delivery report waits (see :meth:`wait_idle`)."""
        return not self._activity

    async def wait_idle(self) -> None:
        """Return once nothing is being stored or processed, no backlog remains and no delivery report
        waits for its row (the outbox has its own: :meth:`Sender.wait_idle`)."""
        # Idle can be a passing moment (a webhook stores, then hands over to a worker): look again on waking.
        while self._activity:
            await self._idle.wait()

    async def _process_and_acknowledge(self, provider: str, stored: store.Stored, message: Inbound,
                                       tried: int = 0) -> None:
        try:
            async for attempt in AsyncRetrying(stop=stop_after_attempt(PROCESS_ATTEMPTS - tried), reraise=True,
                                               wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05)):
                with attempt:
                    await self.process(stored.inbound_id)
        except Exception:  # noqa: BLE001 - the row stays unprocessed: the sweep (recover) retries it
            log.exception("process.failed", inbound_id=stored.inbound_id)
        await self._acknowledge(provider, stored, message)

    async def _acknowledge(self, provider: str, stored: store.Stored, message: Inbound) -> None:
        channel = self.providers.get(provider)
        if channel is not None:
            try:
                await channel.acknowledge(message)
            except Exception:  # noqa: BLE001 - an unanswered button press is cosmetic
                log.warning("acknowledge.failed", inbound_id=stored.inbound_id)

    async def process(self, inbound_id: int) -> list[Reply]:
        """Run the conversation for one stored message and queue its replies (one transaction).

        A failure is counted against the message and raised; the DEAD_LETTER_AFTER-th sets the message
        aside, and it is skipped from then on (``beacon inbound retry`` puts it back).
        """
        with self._active():
            await self.keys.check(self.db)
            try:
                try:
                    return await self._process(inbound_id)
                except KeyringError:
                    # Another process rotated the data key and re-sealed rows under it before this one
                    # noticed: the transaction rolled back, so load the keys and run the message again (a
                    # real tampering fails again and is raised).
                    await self.keys.refresh(self.db)
                    return await self._process(inbound_id)
            except Exception as exc:
                await self._count_failure(inbound_id, type(exc).__name__)
                raise

    async def _count_failure(self, inbound_id: int, error: str) -> None:
        """Count a failed attempt (a database that is down cannot count it: an outage sets nothing aside)."""
        try:
            async with self.db.write() as conn:
                channel = await dead_letter.record_failure(conn, inbound_id, error, datetime.now(UTC),
                                                           DEAD_LETTER_AFTER)
        except Exception:  # noqa: BLE001 - the failure itself is raised by the caller
            log.warning("process.failure_not_counted", inbound_id=inbound_id)
            return
        if channel is not None:  # this failure set the message aside
            DEAD_LETTERS.labels(channel).inc()
            DEAD_LETTER_WAITING.inc()
            log.error("inbound.dead_letter", inbound_id=inbound_id, error=error, attempts=DEAD_LETTER_AFTER)

    async def process_batch(self, inbound_ids: list[int]) -> list[list[Reply] | BaseException]:
        """Process stored messages in one transaction (group commit), in the order given.

        Each message sees what the ones before it wrote, so a person's messages are processed in
        order. When the transaction fails, nothing of it is kept and each message is processed
        again on its own (:meth:`process`): one bad message costs the others a second try, not
        their answers; its exception takes its place in the result.
        """
        if len(inbound_ids) == 1:
            return [await self._process_or_error(inbound_ids[0])]
        with self._active():
            await self.keys.check(self.db)
            try:
                async with self.db.write() as conn:
                    stepped, wake = await self._process_in(conn, inbound_ids)
                if wake:
                    self.sender.wake()
                return [stepped.get(inbound_id, []) for inbound_id in inbound_ids]
            except Exception:  # noqa: BLE001 - one by one, with each failure counted against its message
                return [await self._process_or_error(inbound_id) for inbound_id in inbound_ids]

    async def _process_or_error(self, inbound_id: int) -> list[Reply] | BaseException:
        try:
            return await self.process(inbound_id)
        except Exception as exc:  # noqa: BLE001 - handed to the caller in the message's place
            return exc

    async def _process(self, inbound_id: int) -> list[Reply]:
        async with self.db.write() as conn:
            stepped, queued = await self._process_in(conn, [inbound_id])
        if queued:
            self.sender.wake()
        return stepped.get(inbound_id, [])

    async def _process_in(self, conn: AsyncConnection, inbound_ids: list[int]
                          ) -> tuple[dict[int, list[Reply]], bool]:
        """The conversation steps of messages inside ``conn``'s transaction: (replies by inbound id, whether
        anything was queued).

        Each person's messages are stepped one at a time and in the order they arrived, whichever process or
        task picks them up: :func:`claims.claim` locks the senders' rows (PostgreSQL; SQLite has one writer
        anyway) and puts any earlier message of theirs still waiting first, stepped in this same transaction.
        A message processed before (by another process or task) gets no replies; one stepped here ahead of a
        later message of the same person gets its own.
        """
        stepped: dict[int, list[Reply]] = {}
        queued = False
        for row in await claims.claim(conn, inbound_ids, datetime.now(UTC)):
            replies, queued_ = await self._step(conn, row)
            stepped[int(row.id)] = replies
            queued = queued or queued_
        return stepped, queued

    async def _step(self, conn: AsyncConnection, row: Any) -> tuple[list[Reply], bool]:
        """One claimed message's step (``row`` from :func:`claims.claim`): (replies, whether anything was queued)."""
        started = time.perf_counter()
        keys = self.keys.ring
        now = datetime.now(UTC)
        state = await store.load_state(conn, keys, row.registrant_id, row.previous_at, self.bot.default_language) \
            if row.registrant_id else None
        identity = (await conn.execute(_LOAD_IDENTITY, {"_id": row.identity_id})).first() if row.identity_id else None
        if state is None or identity is None or not row.body_ct:
            return [], False
        address = keys.decrypt(identity.address_ct, identity_aad({"bidx": identity.bidx}))
        text = keys.decrypt(row.body_ct, inbound_aad({"provider": row.provider, "provider_id": row.provider_id}))
        meta = row.meta or {}
        contact = text if meta.get("contact") else None
        named = sources.source_code_in(text, meta.get("payload")) if not state.registered else None
        source = await sources.preset(conn, named) if named else None
        message = Message(text="" if contact else text, channel=row.channel, address=address, at=now,
                          language_hint=meta.get("language_hint"), carrier_opt_out=meta.get("opt_out"),
                          payload=meta.get("payload"), contact_phone=contact, nonce=family.new_code(),
                          source=source, by_link=row.provider == invitation_links.PROVIDER)
        # A /start from the web sign-up's Telegram link claims its code instead of starting a conversation.
        by_telegram = bool(message.payload) and row.channel == ChannelKind.TELEGRAM
        signed_up = by_telegram and await signup.claim_by_telegram(
            conn, keys, message.payload or "", bidx=identity.bidx, registrant_id=row.registrant_id,
            identity_id=identity.id, address=address, now=now)
        transition = Transition(state) if signed_up else machine.step(self.bot, state, message)
        applied = await effects.apply(
            conn, keys, transition.effects, row=row, identity=identity, state=state, now=now,
            default_language=self.bot.default_language, family_channel=self.family_channel)
        if applied.saved:
            await store.save_state(conn, keys, row.registrant_id, state, transition.state, now)
            changed = [f for f in store.COARSE_FIELDS + store.SECRET_FIELDS
                       if getattr(state.profile, f) != getattr(transition.state.profile, f)]
            if changed and transition.state.consented:
                await audit.append(conn, "system", "profile.updated", str(row.registrant_id),
                                   {"fields": sorted(changed)})
        replies = [*transition.replies, *applied.replies]
        await outbox.enqueue(conn, keys, [
            Draft(applied.registrant_id, applied.identity_id, row.channel, address, reply.text,
                  buttons=reply.buttons, contact_button=reply.contact_button)
            for reply in replies
        ] + applied.drafts)
        STEP_SECONDS.observe(time.perf_counter() - started)
        return replies, bool(replies or applied.drafts or signed_up)

    async def handle(self, provider: str, message: Inbound) -> list[Reply] | None:
        """Store and process at once (the simulator answers with the replies); None for a duplicate."""
        stored = await self.receive(provider, message)
        if stored is None:
            return None
        with self._active():
            future: asyncio.Future[list[Reply]] = asyncio.get_running_loop().create_future()
            self._to_process.append((stored.inbound_id, future))
            if self._processor is None or self._processor.done():
                self._processor = asyncio.create_task(self._process_arrivals())
            return await future

    async def _process_arrivals(self) -> None:
        """Process what handle() stored, batch after batch (group commit), until nothing is waiting."""
        try:
            while self._to_process:
                batch, self._to_process = self._to_process[:PROCESS_BATCH], self._to_process[PROCESS_BATCH:]
                results = await self.process_batch([inbound_id for inbound_id, _ in batch])
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            for _, future in self._to_process:  # only if this task itself was cancelled
                if not future.done():
                    future.set_exception(RuntimeError("processing stopped"))

    async def recover(self, older_than: float = 0.0) -> int:
        """Process inbound messages stored but never processed: after a crash between the two
        transactions, or when processing kept failing (until the message is set aside). ``older_than``
        (seconds) leaves alone what is probably still on its way; processing twice is harmless (a
        processed row is skipped). Also brings the gauge of messages set aside up to date."""
        i = schema.inbound.c
        query = select(i.id).where(i.processed_at.is_(None), i.failed_at.is_(None)).order_by(i.id)
        if older_than:
            query = query.where(i.received_at < datetime.now(UTC) - timedelta(seconds=older_than))
        async with self.db.read() as conn:
            ids = (await conn.execute(query)).scalars().all()
            DEAD_LETTER_WAITING.set(await dead_letter.waiting(conn))
        done = 0
        for inbound_id in ids:
            try:
                await self.process(inbound_id)
                done += 1
            except Exception:  # noqa: BLE001 - one message must not hold up the others; tried again next sweep
                log.exception("process.failed", inbound_id=inbound_id)
        return done

    async def record_status(self, provider: str, update_: StatusUpdate) -> None:
        """Apply a delivery report; a failure that calls for it queues the channel's fallback.

        A callback can beat the sender's write of the provider id (the sender records
        outcomes a few milliseconds after the send): it is then applied in the background
        as soon as the row carries that id.
        """
        STATUS.labels(update_.status).inc()
        with self._active():
            if not await self._apply_status(provider, update_):
                self._spawn(self._apply_status_later(provider, update_), self._status_tasks)

    async def _apply_status_later(self, provider: str, update_: StatusUpdate) -> None:
        for delay in STATUS_RETRY_DELAYS:
            await asyncio.sleep(delay)
            try:
                if await self._apply_status(provider, update_):
                    return
            except Exception:  # noqa: BLE001 - a delivery report is worth a retry, not a crash
                log.warning("status.retry_failed")

    async def _apply_status(self, provider: str, update_: StatusUpdate) -> bool:
        """Apply one report to its outbox row; False when no row has that provider id (yet)."""
        async with self.db.write() as conn:
            applied = await delivery.apply_report(conn, self.keys.ring, update_, self.providers.get(provider),
                                                  self.calls, default_language=self.bot.default_language)
        if applied.queued:
            self.sender.wake()
        return applied.found

    async def close(self, grace: float = 10.0) -> None:
        """Give in-flight processing ``grace`` seconds, then stop it (its message stays unprocessed in the
        database and is processed at the next start); drop delivery reports still waiting for their row."""
        for task in list(self._status_tasks):
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
