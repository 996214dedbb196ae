"""Taking in verified webhook messages so that none is lost when the database stalls.

Twilio does not retry a webhook that failed, so a webhook must be answered with the message safe.
Normally that means stored: :meth:`Intake.accept` hands it to :meth:`Service.receive` and processing
follows the answer. When the database cannot commit it within :data:`STORE_WITHIN` seconds (SQLite
locked by another writer, PostgreSQL down), the message goes to the on-disk spool instead, sealed
and fsynced, and the webhook is answered all the same. :meth:`Intake.replay` feeds the spool back
in arrival order once the database answers again; while anything waits on disk, newer messages queue
behind it so that a person's messages are still processed in the order they were sent.

A commit that only finished late is not lost either: its message is processed when it lands, and the
replay of its spooled copy is a duplicate that storage recognises by the provider's message id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import structlog
from prometheus_client import Counter, Gauge

from beacon.service import Service
from channels.base import Inbound
from registry import store
from registry.crypto import KeyringError
from registry.keys import KeyHolder
from registry.spool import Spool

log = structlog.get_logger("beacon.intake")
STORE_WITHIN = 2.0  # seconds a webhook waits for its message's commit before spooling it
REPLAY_EVERY = 1.0  # seconds between looks at the spool while it holds messages
SPOOLED = Counter("beacon_inbound_spooled_total", "Inbound messages kept on disk while the database stalled",
                  ["provider"])
REPLAYED = Counter("beacon_inbound_replayed_total", "Spooled inbound messages handed to the database",
                   ["outcome"])
WAITING = Gauge("beacon_inbound_spool_waiting", "Inbound messages waiting in the on-disk spool")


class Intake:
    """Store-or-spool for webhook messages, and the replay of the spool."""

    def __init__(self, service: Service, keys: KeyHolder, directory: Path) -> None:
        self.service = service
        self.keys = keys
        self.spool = Spool(directory)
        self._wake = asyncio.Event()
        self._after_store: Callable[[str, store.Stored, Inbound], None] = service.process_later
        WAITING.set(self.spool.waiting)

    def leave_to_workers(self, announce: Callable[[], None]) -> None:
        """Only store from now on (``BEACON_WEB_BOT=off``): each stored message is acknowledged to its
        provider and ``announce``d, and the workers run the bot on it (see :mod:`beacon.drain`)."""
        def handed_over(provider: str, stored: store.Stored, message: Inbound) -> None:
            self.service.acknowledge_later(provider, stored, message)
            announce()

        self._after_store = handed_over

    async def accept(self, provider: str, message: Inbound) -> None:
        """Make one verified message safe before its webhook is answered: stored, or spooled."""
        if self.spool.waiting:  # older messages wait on disk: keep the order, queue behind them
            await self._spool(provider, message)
            return
        try:
            await self._store(provider, message)
        except Exception as exc:  # noqa: BLE001 - any failure to store in time: the disk keeps it
            log.warning("inbound.spooling", provider=provider, reason=type(exc).__name__)
            await self._spool(provider, message)

    async def _store(self, provider: str, message: Inbound) -> store.Stored | None:
        """Store and queue for processing within STORE_WITHIN seconds, else raise; a commit that lands
        later is still processed."""
        storing = asyncio.ensure_future(self.service.receive(provider, message))
        try:
            stored = await asyncio.wait_for(asyncio.shield(storing), STORE_WITHIN)
        except BaseException:
            if not storing.done():
                storing.add_done_callback(lambda done: self._stored_late(provider, message, done))
            raise
        if stored is not None:
            self._after_store(provider, stored, message)
        return stored

    def _stored_late(self, provider: str, message: Inbound, done: asyncio.Future[store.Stored | None]) -> None:
        if done.cancelled() or done.exception() is not None:
            return  # the spooled copy will be stored by the replay
        stored = done.result()
        if stored is not None:
            self._after_store(provider, stored, message)

    async def _spool(self, provider: str, message: Inbound) -> None:
        path = await asyncio.to_thread(self.spool.append, self.keys.ring, provider, message)
        SPOOLED.labels(provider).inc()
        WAITING.set(self.spool.waiting)
        log.info("inbound.spooled", provider=provider, file=path.name)
        self._wake.set()

    async def replay(self, stop: asyncio.Event) -> None:
        """Feed the spool back to the database in arrival order, whenever it holds messages, until ``stop``."""
        while not stop.is_set():
            if self.spool.waiting:
                await self.replay_once()
            self._wake.clear()
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(waits, timeout=REPLAY_EVERY if self.spool.waiting else None,
                               return_when=asyncio.FIRST_COMPLETED)
            for wait in waits:
                wait.cancel()

    async def replay_once(self) -> int:
        """Hand the spooled messages to the database, oldest first; stop at the first that cannot be stored
        yet (it is tried again later). Returns how many left the spool."""
        done = 0
        for path in await asyncio.to_thread(self.spool.pending):
            try:
                provider, message = self.spool.read(self.keys.ring, path)
            except (KeyringError, ValueError, KeyError, TypeError) as exc:  # not ours or damaged: set aside
                log.error("inbound.spool_unreadable", file=path.name, reason=type(exc).__name__)
                await asyncio.to_thread(self.spool.set_aside, path)
                REPLAYED.labels("unreadable").inc()
                continue
            try:
                stored = await self._store(provider, message)
            except Exception as exc:  # noqa: BLE001 - the database is not back yet
                log.info("inbound.replay_waiting", file=path.name, reason=type(exc).__name__)
                break
            REPLAYED.labels("stored" if stored else "duplicate").inc()
            await asyncio.to_thread(self.spool.remove, path)
            done += 1
        WAITING.set(self.spool.waiting)
        if done:
            log.info("inbound.replayed", count=done, waiting=self.spool.waiting)
        return done
