"""A crash mid-broadcast (kill -9 of the whole process) loses nothing and sends nothing twice from
the service's point of view: one outbox row per recipient, each accepted by the provider; the only
possible provider-side duplicates are the few messages in flight at the moment of the kill."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from registry.crypto import MasterKeys
from registry.db import Database
from registry.keys import KeyHolder, load_keyring
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, SMS_FROM, dev_keys
from tests.doubles.twilio_api import TwilioDouble
from tests.reliability.harness import BEACON, Server
from tests.seeding import phone, seed_registrants

RECIPIENTS = 300


@pytest.mark.slow
async def test_kill_9_mid_broadcast(tmp_path: Path) -> None:
    keys = dev_keys()
    db_path = tmp_path / "beacon.db"
    url = f"sqlite:///{db_path}"
    db = Database(url)
    await db.migrate()
    master = MasterKeys.parse(keys)
    await seed_registrants(db, KeyHolder(await load_keyring(db, master), master), RECIPIENTS)
    await db.close()
    twilio = TwilioDouble(ACCOUNT_SID, AUTH_TOKEN)
    await twilio.start()
    env = {**os.environ, "BEACON_DATABASE_URL": url, "BEACON_KEYS": keys, "BEACON_ENV": "development",
           "BEACON_LOG_FORMAT": "json", "BEACON_OUTBOX_LEASE_SECONDS": "2", "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
           "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_SMS_FROM": SMS_FROM, "TWILIO_API_BASE_URL": twilio.base_url,
           "TWILIO_RATE_PER_SECOND": "100"}
    server = Server(env, tmp_path)
    try:
        token = subprocess.run([BEACON, "token", "create", "--role", "responder", "--name", "crash"], env=env,
                               cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()[-1]
        await server.start()
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{server.port}/api/v1/broadcasts",
                                    headers={"Authorization": f"Bearer {token}"},
                                    json={"text": {"en": "Evacuate now"}, "check_in": True}) as r:
                assert r.status == 201
                broadcast: dict[str, Any] = await r.json()
        await twilio.wait_for(lambda: len(twilio.messages) >= RECIPIENTS // 3, timeout=30)
        server.kill()
        at_kill = len(twilio.messages)
        assert at_kill < RECIPIENTS, "the broadcast finished before the kill: slow the provider down"
        await server.start()
        everyone = {phone(n) for n in range(1, RECIPIENTS + 1)}
        await twilio.wait_for(lambda: {m.to for m in twilio.messages} >= everyone, timeout=60)
    finally:
        server.stop()
        await twilio.close()
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT registrant_id, status, provider_id FROM outbox WHERE broadcast_id = ?",
                            (broadcast["id"],)).fetchall()
    per_recipient = Counter(r[0] for r in rows)
    assert len(per_recipient) == RECIPIENTS and set(per_recipient.values()) == {1}
    assert all(status in ("sent", "delivered") and provider_id for _, status, provider_id in rows)
    delivered = Counter(m.to for m in twilio.messages)
    duplicates = sum(count - 1 for count in delivered.values())
    # Only what was in flight when the process died can have left twice (at-least-once).
    assert duplicates <= 100 * 2 + 10, duplicates
    assert {m.sid for m in twilio.messages} >= {r[2] for r in rows}
