"""Running the bot on stored messages that no web process will run it on, and the periodic sweep.

By default the web process that stores a message also runs the conversation on it, right after
answering the webhook (:meth:`Service.process_later`). With ``BEACON_WEB_BOT=off`` (PostgreSQL, web
processes started with ``--no-worker``) a web process only verifies and stores, then announces the
message (``NOTIFY`` of kind ``inbound``, one per burst); each ``beacon worker`` LISTENs and drains the
backlog of unprocessed messages in batches through :meth:`Service.process_batch`. Several workers may
drain at once: :mod:`beacon.claims` steps each message once and each person's messages in order,
whoever takes them. Workers also look every :data:`POLL_SECONDS` in case a notification was lost.

A message that keeps failing is left after PROCESS_ATTEMPTS tries to the sweep (:func:`sweep`), minutes
apart, which sets it aside in the end, as for messages processed by web processes.
"""

from __future__ import annotations

import asyncio
import random

import structlog
from sqlalchemy import bindparam, select

from beacon.service import PROCESS_ATTEMPTS, PROCESS_BATCH, PROCESS_CONCURRENCY, SWEEP_SECONDS, Service
from registry import schema
from registry.db import Database

log = structlog.get_logger("beacon.drain")
POLL_SECONDS = 1.0  # how often a worker looks for waiting messages without being told
WINDOW = 512  # waiting messages looked at per round, oldest first

_i = schema.inbound.c
_WAITING = (select(_i.id, _i.registrant_id)
            .where(_i.processed_at.is_(None), _i.failed_at.is_(None), _i.attempts < PROCESS_ATTEMPTS)
            .order_by(_i.id).limit(bindparam("_window")))


class Drainer:
    """Processes the waiting inbound messages when woken (a web process's announcement) and, with
    ``poll``, every ``poll`` seconds as well."""

    def __init__(self, service: Service, db: Database, *, poll: float | None = POLL_SECONDS,
                 lanes: int = PROCESS_CONCURRENCY, window: int = WINDOW) -> None:
        self.service = service
        self.db = db
        self.poll = poll
        self.lanes = 1 if db.sqlite else lanes
        self.window = window
        self._wake = asyncio.Event()
        self._stop: asyncio.Event | None = None

    def wake(self) -> None:
        """Look for waiting messages now."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Drain whenever woken (or every ``poll`` seconds) until ``stop``; round after round while a
        round gets anything done."""
        self._stop = stop
        if self.poll is not None:
            self._wake.set()  # whatever waits from before this worker started
        while not stop.is_set():
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(waits, timeout=self.poll, return_when=asyncio.FIRST_COMPLETED)
            for wait in waits:
                wait.cancel()
            while not stop.is_set():
                self._wake.clear()
                try:
                    if not await self.drain_once():
                        break
                except Exception:  # noqa: BLE001 - the database may be away: try again at the next poll
                    log.exception("inbound.drain_failed")
                    break

    async def drain_once(self) -> int:
        """One round: the oldest waiting messages, up to ``window``, processed in batches; how many of them
        this process stepped without failure (0 when nothing waits or all of it failed)."""
        async with self.db.read() as conn:
            rows = (await conn.execute(_WAITING, {"_window": self.window})).all()
        if not rows:
            return 0
        # A person's messages stay in one lane, in order; the lanes run at once. Workers draining the same
        # window split it differently (a salt each round), so they rarely wait on each other's batches.
        salt = random.getrandbits(32)
        lanes: dict[int, list[int]] = {}
        for row in rows:
            person = int(row.registrant_id) if row.registrant_id else -int(row.id)
            lanes.setdefault(hash((salt, person)) % self.lanes, []).append(int(row.id))
        done = await asyncio.gather(*(self._lane(ids) for ids in lanes.values()))
        return sum(done)

    async def _lane(self, ids: list[int]) -> int:
        done = 0
        for start in range(0, len(ids), PROCESS_BATCH):
            if self._stop is not None and self._stop.is_set():  # stopping: the rest waits for the next worker
                break
            results = await self.service.process_batch(ids[start:start + PROCESS_BATCH])
            done += sum(1 for result in results if not isinstance(result, BaseException))
        return done


async def sweep(service: Service, stop: asyncio.Event, older_than: float = 0.0) -> None:
    """Until ``stop``, every SWEEP_SECONDS: process the messages stored but never processed (a crash between
    the two transactions, processing that kept failing), first those older than ``older_than`` seconds,
    then those older than SWEEP_SECONDS."""
    while not stop.is_set():
        try:
            recovered = await service.recover(older_than)
            if recovered:
                log.info("inbound.recovered", count=recovered)
        except Exception:  # noqa: BLE001 - tried again at the next sweep
            log.exception("inbound.recover_failed")
        older_than = SWEEP_SECONDS
        try:
            await asyncio.wait_for(stop.wait(), timeout=SWEEP_SECONDS)
        except TimeoutError:
            pass
