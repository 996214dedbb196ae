"""The budget of failed STATUS look-ups holds exactly with several web processes on one PostgreSQL database:
concurrent wrong guesses through two engines are counted against one budget, none slipping past it."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack

import pytest

from campaigns import family
from registry.crypto import MasterKeys
from registry.db import Database
from registry.keys import KeyHolder, load_keyring
from tests.conftest import POSTGRES_URL, dev_keys, reset_postgres

GUESSES = family.FAILED_LOOKUP_BUDGET + 40


@pytest.mark.slow
async def test_concurrent_guesses_on_two_processes_share_one_budget() -> None:
    if not POSTGRES_URL:
        pytest.skip("BEACON_TEST_POSTGRES_URL is not set")
    await reset_postgres(POSTGRES_URL)
    master = MasterKeys.parse(dev_keys())
    async with AsyncExitStack() as stack:
        engines = []
        for _ in range(2):
            db = Database(POSTGRES_URL)
            stack.push_async_callback(db.close)
            await db.migrate()
            engines.append((db, KeyHolder(await load_keyring(db, master), master)))

        async def guess(n: int) -> str:
            db, keys = engines[n % 2]
            async with db.write() as conn:
                return (await family.lookup(conn, keys.ring, f"asker {n}".encode(), "AAAAAAAA")).outcome

        outcomes = Counter(await asyncio.gather(*(guess(n) for n in range(GUESSES))))
    assert outcomes == {"unknown": family.FAILED_LOOKUP_BUDGET, "too_many": GUESSES - family.FAILED_LOOKUP_BUDGET}
