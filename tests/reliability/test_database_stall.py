"""No inbound message is lost when the database stalls.

Twilio does not retry a webhook that failed. While another process holds SQLite's write lock for
20 s, or while PostgreSQL cannot be reached, 200 signed webhooks (each a new person's JOIN) must
all be answered 200; once the database is back every message is stored and processed exactly once,
and each person gets the same replies as someone who wrote while all was well.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import func, select

from registry import schema
from tests.conftest import POSTGRES_URL, Running, StartBeacon, reset_postgres
from tests.helpers import eventually, settle

pytestmark = pytest.mark.slow
PEOPLE = 200
LOCK_SECONDS = 20.0


def person(n: int) -> str:
    return f"+23480{n:08d}"


async def replies_to_one_join(run: Running) -> int:
    """How many messages a JOIN gets while the database answers: the yardstick for everyone else."""
    assert run.twilio is not None
    control = person(99_999_999)
    assert (await run.twilio_inbound(control, "JOIN")).status == 200
    await settle(run)
    count = len(run.twilio.sent_to(control))
    assert count >= 1
    return count


async def joins_while_stalled(run: Running) -> list[str]:
    """200 people write at once; every webhook is answered 200. Returns their numbers."""
    people = [person(n) for n in range(1, PEOPLE + 1)]
    answers = await asyncio.gather(*(run.twilio_inbound(p, "JOIN", sid="SM" + secrets.token_hex(16))
                                     for p in people))
    assert [a.status for a in answers] == [200] * PEOPLE
    return people


async def everyone_handled_once(run: Running, people: list[str], per_join: int) -> None:
    """Spool empty, every message stored once and processed, each person answered exactly as the control."""
    assert run.twilio is not None
    await eventually(lambda: run.beacon.intake.spool.waiting == 0, timeout=60, what="the spool to empty")
    await settle(run, timeout=120)
    i = schema.inbound.c
    async with run.beacon.db.read() as conn:
        stored = (await conn.execute(select(func.count()).select_from(schema.inbound))).scalar_one()
        unprocessed = (await conn.execute(select(func.count()).select_from(schema.inbound)
                                          .where(i.processed_at.is_(None)))).scalar_one()
    assert (stored, unprocessed) == (PEOPLE + 1, 0)
    received = Counter(m.to for m in run.twilio.messages)
    assert {p: received[p] for p in people} == {p: per_join for p in people}


@contextlib.contextmanager
def sqlite_write_lock(path: Path, seconds: float) -> Iterator[threading.Thread]:
    """Another process's write transaction on the database file, held for ``seconds``."""
    taken = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, timeout=30)
        try:
            conn.execute("BEGIN IMMEDIATE")
            taken.set()
            threading.Event().wait(seconds)
            conn.commit()
        finally:
            conn.close()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert taken.wait(30), "could not take the write lock"
    try:
        yield holder
    finally:
        holder.join(seconds + 30)


async def test_a_locked_sqlite_database_loses_no_webhook(start_beacon: StartBeacon, tmp_path: Path) -> None:
    run = await start_beacon(twilio=True)
    per_join = await replies_to_one_join(run)
    database = Path(run.settings.database_url.removeprefix("sqlite:///"))
    with sqlite_write_lock(database, LOCK_SECONDS) as holder:
        people = await joins_while_stalled(run)
        assert run.beacon.intake.spool.waiting > 0  # the webhooks were answered from the disk, not the database
        assert holder.is_alive()  # and all of it while the lock was still held
    await everyone_handled_once(run, people, per_join)


class Outage:
    """A TCP relay to PostgreSQL that can be cut: Beacon sees the database go down and come back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.up = True
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        """The database goes away: open connections drop, new ones are refused."""
        self.up = False
        for writer in list(self._links):
            writer.close()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._links |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        self._links -= {writer, upstream_writer}


@pytest.mark.skipif(not POSTGRES_URL, reason="BEACON_TEST_POSTGRES_URL is not set")
async def test_postgresql_down_loses_no_webhook(start_beacon: StartBeacon) -> None:
    assert POSTGRES_URL is not None
    await reset_postgres(POSTGRES_URL)
    parts = urlsplit(POSTGRES_URL)
    outage = Outage((parts.hostname or "127.0.0.1", parts.port or 5432))
    await outage.start()
    relayed = urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{outage.port}"))
    try:
        run = await start_beacon(twilio=True, BEACON_DATABASE_URL=relayed)
        per_join = await replies_to_one_join(run)
        outage.cut()
        people = await joins_while_stalled(run)
        assert run.beacon.intake.spool.waiting > 0
        outage.up = True
        await everyone_handled_once(run, people, per_join)
    finally:
        await outage.close()
