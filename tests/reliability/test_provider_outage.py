"""A Twilio outage in the middle of two back-to-back broadcasts loses nothing, sends nothing twice and keeps
each person's messages in order.

The double first answers 500, then 503 for a while, then stops answering altogether: requests hang, longer
than Beacon's request timeout, so every send under way times out and is retried with backoff. After it
recovers, every recipient has each broadcast exactly once (a request that timed out was never accepted, so
nothing may arrive twice) and the first broadcast before the second (an earlier message waiting for a retry
holds back the later ones to the same person). The hang is shorter than a real 60 s outage to keep the test
quick, scaled with Beacon's send timeout (the Twilio channel's ``send_timeout``) so it still lasts many times
that timeout.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import cast

import pytest

from channels.twilio import TwilioChannel
from domain.vocabulary import ProviderName
from tests.conftest import StartBeacon
from tests.seeding import phone, seed_registrants
from tests.test_broadcasts_e2e import token

RECIPIENTS = 300
SEND_TIMEOUT = 2.0  # seconds; the channel's default is 15
HANG = 6 * SEND_TIMEOUT  # seconds without any answer
ERRORS_500 = 150  # requests answered 500
ERRORS_503 = 3.0  # seconds of 503 answers after them
FIRST, SECOND = "ALPHA first alert", "BRAVO second alert"


@pytest.mark.slow
async def test_outage_mid_broadcast(start_beacon: StartBeacon) -> None:
    running = await start_beacon(twilio=True, BEACON_RATE_LIMITS="on", TWILIO_RATE_PER_SECOND="100")
    twilio = running.twilio
    assert twilio is not None
    channel = cast(TwilioChannel, running.beacon.providers[ProviderName.TWILIO])
    channel.send_timeout = SEND_TIMEOUT
    await seed_registrants(running.beacon.db, running.beacon.keys, RECIPIENTS)
    headers = await token(running)
    for text in (FIRST, SECOND):
        response = await running.client.post("/api/v1/broadcasts", headers=headers, json={"text": {"en": text}})
        assert response.status == 201, await response.text()

    await twilio.wait_for(lambda: len(twilio.messages) >= RECIPIENTS // 3, timeout=60)
    before_outage = len(twilio.messages)
    assert before_outage < 2 * RECIPIENTS, "both broadcasts left before the outage: slow the sender down"
    start = twilio.requests
    twilio.fail_next(ERRORS_500, 500, 20500)
    await twilio.wait_for(lambda: twilio.requests >= start + ERRORS_500, timeout=120)
    twilio.outage(True)  # 503
    await asyncio.sleep(ERRORS_503)
    twilio.outage(False)
    twilio.hang(True)
    await asyncio.sleep(HANG)
    during = len(twilio.messages)
    twilio.hang(False)
    assert twilio.hung > 0, "no send reached the hanging provider"

    everyone = {phone(n) for n in range(1, RECIPIENTS + 1)}

    def complete() -> bool:
        got: defaultdict[str, int] = defaultdict(int)
        for m in twilio.messages:
            got[m.to] += 1
        return all(got[p] >= 2 for p in everyone)

    await twilio.wait_for(complete, timeout=300)
    bodies: defaultdict[str, list[str]] = defaultdict(list)
    for m in twilio.messages:
        bodies[m.to].append(FIRST if FIRST in m.body else SECOND if SECOND in m.body else m.body)
    print(f"\noutage: {before_outage} sent before, {ERRORS_500} x 500, {ERRORS_503:g} s of 503, {HANG:g} s hang "
          f"({twilio.hung} requests hung, timeout {SEND_TIMEOUT:g} s); {len(twilio.messages)} messages, "
          f"{twilio.requests} requests in all; {during - before_outage} accepted during the outage")
    assert set(bodies) == everyone
    wrong = {p: b for p, b in bodies.items() if b != [FIRST, SECOND]}
    assert not wrong, f"{len(wrong)} people got duplicates or the wrong order, e.g. {list(wrong.items())[:3]}"
