"""A provider's rate limit holds across processes: two `beacon worker` processes on one PostgreSQL database
share one long code's pace (registry/send_rates.py) instead of each sending at the full rate."""

from __future__ import annotations

import bisect
from collections import Counter
from pathlib import Path

import pytest

from campaigns import outbox
from registry.crypto import MasterKeys
from registry.db import Database
from registry.keys import KeyHolder, load_keyring
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, POSTGRES_URL, dev_keys, reset_postgres
from tests.doubles.twilio_api import TwilioDouble
from tests.processes import Process, postgres_env
from tests.seeding import phone, seed_registrants

RATE = 10  # messages a second for the one sender (TWILIO_RATE_PER_SECOND)
MESSAGES = 60


@pytest.mark.slow
async def test_two_workers_share_one_senders_rate(tmp_path: Path) -> None:
    if not POSTGRES_URL:
        pytest.skip("BEACON_TEST_POSTGRES_URL is not set")
    await reset_postgres(POSTGRES_URL)
    keys = dev_keys()
    db = Database(POSTGRES_URL)
    try:
        await db.migrate()
        master = MasterKeys.parse(keys)
        holder = KeyHolder(await load_keyring(db, master), master)
        await seed_registrants(db, holder, MESSAGES)
        async with db.write() as conn:
            await outbox.enqueue(conn, holder.ring, [
                outbox.Draft(registrant_id=n, identity_id=n, channel="sms", address=phone(n), text="Shelter open")
                for n in range(1, MESSAGES + 1)])
    finally:
        await db.close()
    async with TwilioDouble(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        # Each worker holds at most 5 messages, so both keep claiming: alone, each would send RATE a second.
        env = postgres_env(POSTGRES_URL, keys, twilio, TWILIO_RATE_PER_SECOND=str(RATE), BEACON_SENDER_CAPACITY="5")
        workers = [Process(["worker"], env, tmp_path, f"worker{i}").start() for i in (1, 2)]
        try:
            await twilio.wait_for(lambda: len(twilio.messages) >= MESSAGES, timeout=60)
        finally:
            for worker in workers:
                worker.stop()
    assert Counter(m.to for m in twilio.messages) == Counter(phone(n) for n in range(1, MESSAGES + 1))
    arrived = sorted(m.arrived for m in twilio.messages)
    # Sends are spaced 1/RATE apart with no burst; a closed one-second window can hold RATE + 1 of them.
    busiest = max(bisect.bisect_right(arrived, t + 1.0) - i for i, t in enumerate(arrived))
    assert busiest <= RATE + 1, busiest
