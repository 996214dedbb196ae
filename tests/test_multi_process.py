"""The deployment of the Procfile on PostgreSQL: two web processes (`beacon serve --no-worker`) and two
workers (`beacon worker`) share one database. A 20,000-recipient broadcast with a check-in goes out while one
worker is killed with kill -9: everyone gets the message once, except the few messages the dead worker held
at that moment, which may leave twice (at-least-once); replies sent through either web process are counted
once, on either web process."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from registry import audit, tokens
from registry.crypto import MasterKeys
from registry.db import Database
from registry.keys import KeyHolder, load_keyring
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, POSTGRES_URL, dev_keys, reset_postgres
from tests.doubles.twilio_api import TwilioDouble, signed_form_post
from tests.processes import Process, healthy, postgres_env
from tests.reliability.harness import free_port
from tests.seeding import phone, seed_registrants

RECIPIENTS = 20_000
CAPACITY = 500  # BEACON_SENDER_CAPACITY: the most a worker holds, so the most that can leave twice at a kill
REPLIES = 300
PUBLIC_URL = "https://beacon.example.org"


async def counts(session: aiohttp.ClientSession, port: int, headers: dict[str, str], broadcast: int) -> Any:
    async with session.get(f"http://127.0.0.1:{port}/api/v1/broadcasts/{broadcast}", headers=headers) as r:
        assert r.status == 200
        return (await r.json())["counts"]


async def reply(session: aiohttp.ClientSession, port: int, n: int, sid: str) -> None:
    """Recipient n answers "1" (safe), as Twilio delivers it: a signed webhook to the public URL."""
    url = PUBLIC_URL + "/webhooks/twilio/messages"
    headers, body = signed_form_post(AUTH_TOKEN, url, {"MessageSid": sid, "AccountSid": ACCOUNT_SID,
                                                        "From": phone(n), "To": "+15005550006", "Body": "1"})
    async with session.post(f"http://127.0.0.1:{port}/webhooks/twilio/messages", data=body, headers=headers) as r:
        assert r.status == 200


@pytest.mark.slow
async def test_two_web_and_two_workers_survive_a_killed_worker(tmp_path: Path) -> None:
    if not POSTGRES_URL:
        pytest.skip("BEACON_TEST_POSTGRES_URL is not set")
    await reset_postgres(POSTGRES_URL)
    marks = [("start", time.monotonic())]
    keys = dev_keys()
    master = MasterKeys.parse(keys)
    audit.use(master)
    db = Database(POSTGRES_URL)
    try:
        await db.migrate()
        await seed_registrants(db, KeyHolder(await load_keyring(db, master), master), RECIPIENTS)
        token = await tokens.create(db, "responder", "scale")
    finally:
        await db.close()
    marks.append(("seeded", time.monotonic()))
    headers = {"Authorization": f"Bearer {token}"}
    async with TwilioDouble(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        env = postgres_env(POSTGRES_URL, keys, twilio, BEACON_PUBLIC_URL=PUBLIC_URL,
                           TWILIO_RATE_PER_SECOND="20000", BEACON_SENDER_CAPACITY=str(CAPACITY),
                           BEACON_OUTBOX_LEASE_SECONDS="3")
        ports = [free_port(), free_port()]
        webs = [Process(["serve", "--no-worker", "--port", str(port)], env, tmp_path, f"web{i}")
                for i, port in enumerate(ports)]
        workers = [Process(["worker"], env, tmp_path, f"worker{i}") for i in range(2)]
        for process in (*webs, *workers):
            process.start()
        try:
            async with aiohttp.ClientSession() as session:
                for web, port in zip(webs, ports, strict=True):
                    await healthy(session, web, port)
                marks.append(("up", time.monotonic()))
                async with session.post(f"http://127.0.0.1:{ports[0]}/api/v1/broadcasts", headers=headers,
                                        json={"text": {"en": "Evacuate now"}, "check_in": True}) as r:
                    assert r.status == 201
                    broadcast = (await r.json())["id"]
                await twilio.wait_for(lambda: len(twilio.messages) >= RECIPIENTS // 4, timeout=120)
                workers[0].kill()
                assert len(twilio.messages) < RECIPIENTS, "the broadcast finished before the kill"
                everyone = {phone(n) for n in range(1, RECIPIENTS + 1)}
                await twilio.wait_for(lambda: len({m.to for m in twilio.messages}) >= RECIPIENTS, timeout=180)
                assert {m.to for m in twilio.messages} == everyone
                marks.append(("sent", time.monotonic()))
                delivered = Counter(m.to for m in twilio.messages)
                duplicates = sum(n - 1 for n in delivered.values())
                # Only what the killed worker held can have left twice; the live one is never the cause.
                assert duplicates <= CAPACITY, duplicates

                # Replies alternate between the web processes; each is also retried on the other one (Twilio
                # retries a webhook it thinks failed), and must count once.
                for n in range(1, REPLIES + 1):
                    await reply(session, ports[n % 2], n, f"SM{n:032d}")
                    if n % 10 == 0:
                        await reply(session, ports[(n + 1) % 2], n, f"SM{n:032d}")
                deadline = time.monotonic() + 60
                seen: list[Any] = []
                while time.monotonic() < deadline:
                    seen = [await counts(session, port, headers, broadcast) for port in ports]
                    if all(c["safe"] >= REPLIES for c in seen):
                        break
                    await asyncio.sleep(0.2)
                marks.append(("tallied", time.monotonic()))
                for tally in seen:
                    assert tally["recipients"] == RECIPIENTS
                    assert tally["safe"] == REPLIES and tally["need_help"] == 0, tally
                    assert tally["no_reply"] == RECIPIENTS - REPLIES
        finally:
            for process in (*webs, *workers):
                if process.proc is not None and process.proc.poll() is None:
                    process.stop()
    steps = ", ".join(f"{name} {at - before:.1f} s" for (_, before), (name, at) in zip(marks, marks[1:], strict=False))
    print(f"\n{RECIPIENTS} recipients, {duplicates} sent twice after the kill; {steps}")
