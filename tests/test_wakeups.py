"""On PostgreSQL, work a web process queues wakes the workers of other processes at once (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from beacon import wakeups
from campaigns.scheduler import Runner
from campaigns.sender import Sender
from domain.areas import Gazetteer
from registry.crypto import MasterKeys
from registry.db import Database
from registry.keys import KeyHolder, load_keyring
from tests.conftest import POSTGRES_URL, dev_keys, reset_postgres


class Woken:
    """Stands in for a worker's sender or runner: counts its wake-ups."""

    def __init__(self) -> None:
        self.times = 0
        self.changed = asyncio.Event()

    def wake(self) -> None:
        self.times += 1
        self.changed.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


@pytest.mark.slow
async def test_a_web_process_wakes_the_workers_of_other_processes() -> None:
    if not POSTGRES_URL:
        pytest.skip("BEACON_TEST_POSTGRES_URL is not set")
    await reset_postgres(POSTGRES_URL)
    db = Database(POSTGRES_URL)
    stop = asyncio.Event()
    try:
        await db.migrate()
        master = MasterKeys.parse(dev_keys())
        keys = KeyHolder(await load_keyring(db, master), master)
        web_sender = Sender(db, keys, {})
        web_runner = Runner(db, keys, Gazetteer.load(), web_sender, default_language="en", family_channel=None)
        announcer = wakeups.Announcer(db)
        announcer.attach(web_sender, web_runner)
        sender, runner = Woken(), Woken()
        tasks = [asyncio.create_task(announcer.run(stop)),
                 asyncio.create_task(wakeups.listen(POSTGRES_URL, sender, runner, stop))]  # type: ignore[arg-type]
        await sender.until(lambda: sender.times == 1)  # listening: it looks once for what it may have missed
        await runner.until(lambda: runner.times == 1)
        web_sender.wake()  # a reply was queued
        await sender.until(lambda: sender.times == 2)
        assert runner.times == 1
        web_runner.wake()  # a broadcast was created
        await runner.until(lambda: runner.times == 2)
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        stop.set()
        await db.close()
