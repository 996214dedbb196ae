"""Work queued in one process wakes the workers of the others at once (PostgreSQL LISTEN/NOTIFY).

Without it a worker finds what a web process queued when it next looks: the sender within a second,
the broadcast runner within 5 seconds. A web process without a worker sends one NOTIFY per burst of
queued work; every process that runs a sender and runner LISTENs and wakes them. Polling stays as
the safety net: a lost notification (a listener reconnecting) delays work, never loses it.

With ``BEACON_WEB_BOT=off`` a web process only stores what arrives and announces it as ``inbound``:
the workers' :class:`beacon.drain.Drainer` runs the bot on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog
from sqlalchemy import text

from campaigns.scheduler import Runner
from campaigns.sender import Sender
from registry.db import Database

log = structlog.get_logger("beacon.wakeups")
CHANNEL = "beacon_work"
OUTBOX, BROADCASTS, INBOUND = "outbox", "broadcasts", "inbound"
RECONNECT_SECONDS = 1.0
_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', :what)")


class Announcer:
    """Tells other processes about work this one queued: one NOTIFY per kind per burst."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: set[str] = set()
        self._queued = asyncio.Event()

    def attach(self, sender: Sender, runner: Runner) -> None:
        """Announce each wake of this process's (idle) sender and runner."""
        sender.also_wake.append(lambda: self.announce(OUTBOX))
        runner.also_wake.append(lambda: self.announce(BROADCASTS))

    def announce(self, what: str) -> None:
        """Announce work of kind ``what`` with the next NOTIFY (one per kind, however often called meanwhile)."""
        self._pending.add(what)
        self._queued.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Send the announcements until ``stop``."""
        while not stop.is_set():
            stopping = asyncio.ensure_future(stop.wait())
            queued = asyncio.ensure_future(self._queued.wait())
            await asyncio.wait({stopping, queued}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            queued.cancel()
            self._queued.clear()
            pending, self._pending = self._pending, set()
            try:
                async with self._db.write() as conn:
                    for what in sorted(pending):
                        await conn.execute(_NOTIFY, {"what": what})
            except Exception:  # noqa: BLE001 - the workers' polling finds the work anyway
                log.warning("wakeups.notify_failed")


async def listen(url: str, sender: Sender, runner: Runner, stop: asyncio.Event,
                 inbound: Callable[[], None] | None = None) -> None:
    """Wake ``sender`` and ``runner`` whenever another process announces work, until ``stop``; call
    ``inbound`` (if given) when a web process announces stored messages left to the workers."""
    def heard(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == OUTBOX:
            sender.wake()
        elif payload == BROADCASTS:
            runner.wake()
        elif payload == INBOUND and inbound is not None:
            inbound()

    while not stop.is_set():
        lost = asyncio.Event()
        conn = None
        try:
            conn = await asyncpg.connect(url)
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            await conn.add_listener(CHANNEL, heard)
            sender.wake()  # whatever was announced while no one listened
            runner.wake()
            if inbound is not None:
                inbound()
            stopping = asyncio.ensure_future(stop.wait())
            dropped = asyncio.ensure_future(lost.wait())
            await asyncio.wait({stopping, dropped}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            dropped.cancel()
        except Exception:  # noqa: BLE001 - polling covers the gap; listen again shortly
            log.warning("wakeups.listen_failed")
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
        if not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=RECONNECT_SECONDS)
