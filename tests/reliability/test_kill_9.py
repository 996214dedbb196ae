"""kill -9 of the whole `beacon serve` process group at ten random moments of a 2,000-recipient check-in
broadcast, each followed by a restart, loses nothing and duplicates only what was in flight.

Checked afterwards: every recipient has exactly one outbox row (fan-out resumed, never repeated), the row is
sent with the provider's id, and every recipient got the message at least once. Messages sent but not yet
recorded when the process died are sent again by the next process (at-least-once): each kill can duplicate
at most the sends the dead process had under way, which the sender bounds by its concurrency.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import random
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from campaigns.sender import Sender
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.doubles.twilio_api import TwilioDouble
from tests.reliability.harness import Server, create_token, seed, server_env
from tests.seeding import phone

RECIPIENTS = 2000
KILLS = 10
SEED = 20261204
# Sends the sender keeps talking to the provider at once: the most one dead process can leave unrecorded.
CONCURRENCY = int(inspect.signature(Sender.__init__).parameters["concurrency"].default)


def reached(twilio: TwilioDouble, count: int) -> bool:
    return len(twilio.messages) >= count


@pytest.mark.slow
async def test_ten_kills_during_a_broadcast(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    # Kill after these many messages reached the provider: spread over the broadcast, never at its very end.
    moments = sorted(rng.sample(range(1, RECIPIENTS * 9 // 10), KILLS))
    twilio = TwilioDouble(ACCOUNT_SID, AUTH_TOKEN)
    await twilio.start()
    env = server_env(tmp_path, twilio, BEACON_OUTBOX_LEASE_SECONDS="2", TWILIO_RATE_PER_SECOND="100")
    await seed(env, RECIPIENTS)
    server = Server(env, tmp_path)
    boundaries: list[int] = []  # len(twilio.messages) right after each kill
    try:
        token = create_token(env, tmp_path, "responder", "kill9")
        await server.start()
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{server.url}/api/v1/broadcasts", headers={"Authorization": f"Bearer {token}"},
                                    json={"text": {"en": "Evacuate now"}, "check_in": True}) as r:
                assert r.status == 201, await r.text()
                broadcast: dict[str, Any] = await r.json()
        everyone = {phone(n) for n in range(1, RECIPIENTS + 1)}
        for moment in moments:
            await twilio.wait_for(functools.partial(reached, twilio, moment), timeout=120)
            server.kill()
            boundaries.append(len(twilio.messages))
            assert {m.to for m in twilio.messages} < everyone, "the broadcast finished before a kill"
            await server.start()
        await twilio.wait_for(lambda: {m.to for m in twilio.messages} >= everyone, timeout=180)
    finally:
        server.stop()
        await twilio.close()

    with sqlite3.connect(tmp_path / "beacon.db") as conn:
        rows = conn.execute("SELECT registrant_id, status, provider_id FROM outbox WHERE broadcast_id = ?",
                            (broadcast["id"],)).fetchall()
    per_recipient = Counter(r[0] for r in rows)
    assert len(per_recipient) == RECIPIENTS and set(per_recipient.values()) == {1}, "one outbox row per recipient"
    assert all(status in ("sent", "delivered") and provider_id for _, status, provider_id in rows)
    assert {m.sid for m in twilio.messages} >= {r[2] for r in rows}, "every recorded provider id is a real message"
    assert {m.to for m in twilio.messages} == everyone

    # Attribute each duplicate to the kill that cut its send short: a copy followed by another copy to the
    # same person was under way, unrecorded, when the process that sent it died. Which process sent a copy
    # is known from when it arrived (between kills), except for requests the dead process had already written
    # to the socket: the double reads those just after the kill, so an earlier copy arriving in the same
    # interval as the next one came from the process killed at the start of that interval.
    arrivals: defaultdict[str, list[int]] = defaultdict(list)
    for index, message in enumerate(twilio.messages):
        arrivals[message.to].append(sum(1 for b in boundaries if index >= b))  # interval it arrived in
    per_kill = [0] * KILLS
    for intervals in arrivals.values():
        for earlier, later in itertools.pairwise(intervals):
            kill = earlier if earlier < later else earlier - 1
            assert 0 <= kill < KILLS, f"a duplicate no kill explains: {intervals}"
            per_kill[kill] += 1
    duplicates = len(twilio.messages) - RECIPIENTS
    print(f"\nkill -9 x{KILLS} at {moments}: {len(twilio.messages)} provider messages for {RECIPIENTS} recipients, "
          f"{duplicates} duplicates, per kill {per_kill} (bound {CONCURRENCY} each)")
    assert sum(per_kill) == duplicates
    assert max(per_kill) <= CONCURRENCY, per_kill
