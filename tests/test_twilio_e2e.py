"""Twilio SMS and WhatsApp end to end: signed webhooks into the running app, replies out through the
real SDK to the local Twilio REST double, delivery reports back in.

Every wait is on an observable state (the double's ``wait_for``, or :func:`tests.helpers.settle`), never a fixed
sleep.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request
from sqlalchemy import func, select, update

import campaigns.sender
from beacon.app import read_body
from campaigns import outbox
from campaigns.outbox import Draft
from channels.base import WebhookRejected
from channels.twilio import EMPTY_TWIML
from registry import schema
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, SMS_FROM, WHATSAPP_FROM, Running, StartBeacon
from tests.doubles.twilio_api import StoredMessage, sign
from tests.helpers import settle

PHONE = "+2348012345678"
WA = "whatsapp:" + PHONE
TEMPLATE = "HX" + "5" * 32
STATUS_URL = "https://beacon.example.org/webhooks/twilio/status"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff in tens of milliseconds so retries happen within the test's time."""
    monkeypatch.setattr(campaigns.sender, "BACKOFF_BASE", 0.02)


# -- helpers -------------------------------------------------------------------------------------


async def scalar(run: Running, query: Any) -> Any:
    async with run.beacon.db.read() as conn:
        return (await conn.execute(query)).scalar()


async def count(run: Running, table: Any, *where: Any) -> int:
    return int(await scalar(run, select(func.count()).select_from(table).where(*where)))


async def outbox_rows(run: Running) -> list[Any]:
    async with run.beacon.db.read() as conn:
        return list((await conn.execute(select(schema.outbox).order_by(schema.outbox.c.id))).all())


async def say(run: Running, sender: str, text: str, **extra: str) -> list[StoredMessage]:
    """One signed inbound message; the messages the app then sent (all of them, to anyone)."""
    assert run.twilio is not None
    before = len(run.twilio.messages)
    response = await run.twilio_inbound(sender, text, **extra)
    assert response.status == 200
    assert response.content_type == "text/xml"
    assert await response.text() == EMPTY_TWIML
    await settle(run)
    return run.twilio.messages[before:]


def texts(messages: list[StoredMessage]) -> str:
    return "\n".join(m.body for m in messages)


async def register(run: Running, sender: str = PHONE) -> None:
    await say(run, sender, "JOIN")
    await say(run, sender, "1")
    await say(run, sender, "YES")
    assert "registered" in texts(await say(run, sender, "tripoli"))


async def registrant(run: Running) -> Any:
    async with run.beacon.db.read() as conn:
        [row] = (await conn.execute(select(schema.registrants))).all()
    return row


async def identity(run: Running) -> Any:
    async with run.beacon.db.read() as conn:
        [row] = (await conn.execute(select(schema.identities))).all()
    return row


async def assert_each_row_sent_once(run: Running) -> None:
    """Every outbox row left exactly once, and the double holds nothing the outbox does not know."""
    assert run.twilio is not None
    rows = await outbox_rows(run)
    sids = [r.provider_id for r in rows]
    assert None not in sids
    assert sorted(sids) == sorted(m.sid for m in run.twilio.messages)


# -- inbound -------------------------------------------------------------------------------------


async def test_sms_registration_replies_through_the_rest_api(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    await register(run)
    sent = run.twilio.messages
    assert len(sent) >= 5
    for message in sent:
        assert (message.to, message.from_, message.messaging_service_sid) == (PHONE, SMS_FROM, None)
        assert message.status_callback == STATUS_URL
        assert message.account_sid == ACCOUNT_SID
    assert "English" in sent[0].body + sent[1].body
    assert await count(run, schema.inbound) == 4
    rows = await outbox_rows(run)
    assert {r.status for r in rows} == {"sent"}  # Twilio's "queued" answer means it has left our queue
    await assert_each_row_sent_once(run)
    await settle(run)  # and nothing is sent again later
    assert len(run.twilio.messages) == len(sent)


async def test_sms_via_messaging_service(start_beacon: StartBeacon) -> None:
    service = "MG" + "7" * 32
    run = await start_beacon(twilio=True, TWILIO_MESSAGING_SERVICE_SID=service)
    [first, *_] = await say(run, PHONE, "JOIN")
    assert (first.to, first.from_, first.messaging_service_sid) == (PHONE, None, service)
    assert first.status_callback == STATUS_URL


async def test_bad_signature_is_refused_and_nothing_is_stored(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    path = "/webhooks/twilio/messages"
    params = {"MessageSid": "SM" + "1" * 32, "AccountSid": ACCOUNT_SID, "From": PHONE, "To": SMS_FROM,
              "Body": "JOIN"}
    attempts = [
        {},  # no signature at all
        {"X-Twilio-Signature": sign("0" * 32, run.settings.public_url + path, params)},  # wrong token
        {"X-Twilio-Signature": sign(AUTH_TOKEN, str(run.client.make_url(path)), params)},  # the Host's URL
        {"X-Twilio-Signature": sign(AUTH_TOKEN, run.settings.public_url + path, {**params, "Body": "HELP"})},
    ]
    for headers in attempts:
        response = await run.client.post(path, data=params, headers=headers)
        assert response.status == 403
    status = {"MessageSid": "SM" + "2" * 32, "MessageStatus": "delivered"}
    response = await run.client.post("/webhooks/twilio/status", data=status, headers={"X-Twilio-Signature": "x"})
    assert response.status == 403
    for table in (schema.inbound, schema.registrants, schema.identities, schema.outbox):
        assert await count(run, table) == 0
    assert run.twilio.requests == 0


async def test_the_signature_covers_the_public_url_whatever_the_host(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    path = "/webhooks/twilio/messages?attempt=2"
    params = {"MessageSid": "SM" + "3" * 32, "AccountSid": ACCOUNT_SID, "From": PHONE, "To": SMS_FROM,
              "Body": "JOIN"}
    headers = {"X-Twilio-Signature": sign(AUTH_TOKEN, run.settings.public_url + path, params),
               "Host": "attacker.example"}
    response = await run.client.post(path, data=params, headers=headers)
    assert response.status == 200
    await settle(run)
    assert await count(run, schema.inbound) == 1


async def chunks() -> Any:
    for _ in range(5):
        yield b"Body=" + b"x" * (16 * 1024) + b"&"


async def test_oversized_body_is_refused(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    response = await run.twilio_inbound(PHONE, "x" * (64 * 1024 + 1))
    assert response.status == 413
    response = await run.client.post("/webhooks/twilio/messages", data=chunks(),  # no Content-Length
                                     headers={"X-Twilio-Signature": "x"})
    assert response.status == 413
    assert await count(run, schema.inbound) == 0


async def test_a_body_shorter_than_its_length_is_refused() -> None:
    """aiohttp drops the connection of a client that stops early; a stream that ends short is refused all the same."""
    loop = asyncio.get_running_loop()
    payload = StreamReader(BaseProtocol(loop), 2**16, loop=loop)
    payload.feed_data(b"Body=JOIN")
    payload.feed_eof()
    request = make_mocked_request("POST", "/webhooks/twilio/messages", headers={"Content-Length": "100"},
                                  payload=payload)
    with pytest.raises(WebhookRejected) as caught:
        await read_body(request, 64 * 1024)
    assert caught.value.status == 400


@pytest.mark.slow
async def test_replayed_message_sid_is_processed_once(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    await register(run)
    sid = "SM" + secrets.token_hex(16)
    first = await say(run, PHONE, "MYDATA", sid=sid)
    assert len(first) == 1 and "Tripoli" in first[0].body
    # Twilio retries: one after the fact, two overlapping.
    again = await asyncio.gather(*(run.twilio_inbound(PHONE, "MYDATA", sid=sid) for _ in range(2)))
    again.append(await run.twilio_inbound(PHONE, "MYDATA", sid=sid))
    for response in again:
        assert response.status == 200 and await response.text() == EMPTY_TWIML
    await settle(run)
    assert await count(run, schema.inbound, schema.inbound.c.provider_id == sid) == 1
    assert [m.body for m in run.twilio.messages].count(first[0].body) == 1
    await assert_each_row_sent_once(run)


async def test_sms_and_whatsapp_are_one_registrant(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    await register(run)  # over SMS
    mine = await say(run, WA, "MYDATA")
    assert [(m.to, m.from_) for m in mine] == [(WA, WHATSAPP_FROM)]  # answered where they wrote
    assert "Tripoli" in mine[0].body
    assert mine[0].status_callback == STATUS_URL
    assert await count(run, schema.registrants) == 1
    assert (await identity(run)).last_channel == "whatsapp"
    back = await say(run, PHONE, "HELP")
    assert back and {(m.to, m.from_) for m in back} == {(PHONE, SMS_FROM)}
    assert (await identity(run)).last_channel == "sms"
    assert await count(run, schema.identities) == 1


# -- opt-out -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sender", [PHONE, WA], ids=["sms", "whatsapp"])
@pytest.mark.slow
async def test_carrier_opt_out_words(start_beacon: StartBeacon, sender: str) -> None:
    run = await start_beacon(twilio=True)
    await register(run, sender)
    for word in ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"):
        await say(run, sender, word)
        assert (await registrant(run)).opted_out, word
        await say(run, sender, "START" if word != "QUIT" else "UNSTOP")
        assert not (await registrant(run)).opted_out, word
    await say(run, sender, "stop ")  # case and spacing do not matter
    assert (await registrant(run)).opted_out


async def test_opt_out_type_from_twilio(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    await register(run)
    # Twilio's Advanced Opt-Out has already answered the person: record the state, send nothing.
    assert await say(run, PHONE, "Stop", OptOutType="STOP") == []
    assert (await registrant(run)).opted_out
    assert await say(run, PHONE, "Unstop", OptOutType="START") == []
    assert not (await registrant(run)).opted_out
    # HELP is answered by the bot as usual.
    assert await say(run, PHONE, "HELP", OptOutType="HELP")


async def test_send_failing_with_21610_marks_the_registrant_opted_out(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    await register(run)
    run.twilio.error_for_number(PHONE, 21610)
    requests = run.twilio.requests
    assert await say(run, PHONE, "HELP") == []
    rows = [r for r in await outbox_rows(run) if r.provider_id is None]
    assert rows and {(r.status, r.error_code, r.attempts) for r in rows} == {("failed", "21610", 1)}
    assert run.twilio.requests == requests + len(rows)  # not retried
    assert (await registrant(run)).opted_out
    assert (await identity(run)).reachable


async def test_send_failing_with_21211_marks_the_identity_unreachable(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    run.twilio.error_for_number(PHONE, 21211)
    assert await say(run, PHONE, "JOIN") == []
    rows = await outbox_rows(run)
    assert rows and {(r.status, r.error_code, r.attempts) for r in rows} == {("failed", "21211", 1)}
    assert run.twilio.requests == len(rows)  # one attempt each, none retried
    found = await identity(run)
    assert (found.reachable, found.error_code) == (False, "21211")
    assert not (await registrant(run)).opted_out


# -- provider trouble ----------------------------------------------------------------------------


async def test_outage_mid_send_loses_nothing_and_sends_nothing_twice(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    api = run.twilio
    await register(run)
    before = len(api.messages)
    api.outage(True)
    for text in ("HELP", "MYDATA", "LANG"):
        response = await run.twilio_inbound(PHONE, text)
        assert response.status == 200
    await api.wait_for(lambda: api.requests >= before + 3)  # the replies met the outage
    await run.beacon.service.wait_idle()
    queued = [r for r in await outbox_rows(run) if r.provider_id is None]
    assert len(queued) >= 3
    assert {r.error_code for r in queued} <= {"20503", None}
    assert len(api.messages) == before
    api.outage(False)
    await api.wait_for(lambda: len(api.messages) == before + len(queued))
    await settle(run)
    assert len(api.messages) == before + len(queued)
    rows = await outbox_rows(run)
    assert {r.status for r in rows} == {"sent"}
    await assert_each_row_sent_once(run)
    assert max(r.attempts for r in rows) >= 2


async def test_429_backs_off_then_succeeds(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    api = run.twilio
    await register(run)
    before, requests = len(api.messages), api.requests
    api.rate_limit_next(1, retry_after=0.3)
    started = time.monotonic()
    await run.twilio_inbound(PHONE, "MYDATA")
    await api.wait_for(lambda: len(api.messages) == before + 1)
    assert api.messages[-1].arrived - started >= 0.3  # Retry-After was honoured
    await settle(run)
    assert api.requests == requests + 2
    row = (await outbox_rows(run))[-1]
    assert (row.status, row.attempts, row.provider_id) == ("sent", 2, api.messages[-1].sid)
    await assert_each_row_sent_once(run)


async def test_expired_lease_is_sent_again(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    api = run.twilio
    await say(run, PHONE, "JOIN")
    who = await registrant(run)
    past, future = datetime.now(UTC) - timedelta(seconds=5), datetime.now(UTC) + timedelta(minutes=5)
    o = schema.outbox.c
    async with run.beacon.db.write() as conn:  # a process claimed these and then died
        await outbox.enqueue(conn, run.beacon.keys.ring, [
            Draft(who.id, (await identity(run)).id, "sms", PHONE, text) for text in ("lease over", "lease held")])
        await conn.execute(update(schema.outbox).where(o.status == "queued").values(
            status="claimed", attempts=1, lease_until=past))
        await conn.execute(update(schema.outbox).where(o.id == select(func.max(o.id)).scalar_subquery())
                           .values(lease_until=future))
    run.beacon.sender.wake()
    await api.wait_for(lambda: any(m.body == "lease over" for m in api.messages))
    await run.beacon.sender.wait_idle()
    rows = {r.id: r for r in await outbox_rows(run)}
    over, held = sorted(rows)[-2:]
    assert (rows[over].status, rows[over].attempts) == ("sent", 2)
    assert rows[held].status == "claimed"  # a live lease is left alone
    assert [m.body for m in api.messages].count("lease over") == 1
    assert "lease held" not in [m.body for m in api.messages]


# -- delivery reports ----------------------------------------------------------------------------


async def status_of(run: Running, sid: str) -> tuple[str, str | None]:
    o = schema.outbox.c
    async with run.beacon.db.read() as conn:
        row = (await conn.execute(select(o.status, o.error_code).where(o.provider_id == sid))).one()
    return row.status, row.error_code


async def report(run: Running, sid: str, status: str, error_code: str | None = None) -> None:
    response = await run.twilio_status(sid, status, error_code)
    assert response.status == 200


async def test_status_callbacks_update_the_row_and_never_go_back(start_beacon: StartBeacon,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("beacon.service.STATUS_RETRY_DELAYS", (0.5,))  # an unknown id is given up soon
    run = await start_beacon(twilio=True)
    first, second, *_ = await say(run, PHONE, "JOIN")
    sent = len(run.twilio.messages)
    steps = [
        ("queued", "sent"),  # Twilio has it; it is not ours to send again
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("sent", "delivered"),  # late and out of order
        ("queued", "delivered"),
        ("read", "read"),
        ("delivered", "read"),
    ]
    for reported, expected in steps:
        await report(run, first.sid, reported)
        assert (await status_of(run, first.sid))[0] == expected, reported
    await report(run, second.sid, "undelivered", "30003")
    assert await status_of(run, second.sid) == ("undelivered", "30003")
    await report(run, second.sid, "failed", "30003")
    assert await status_of(run, second.sid) == ("failed", "30003")
    await report(run, "SM" + "9" * 32, "delivered")  # not one of ours: acknowledged, waited for a little, ignored
    assert not run.beacon.service.idle  # the unknown id waits a little for its row
    await settle(run)
    assert len(run.twilio.messages) == sent  # no report made anything go out again


async def test_status_callback_that_beats_the_sender_is_applied(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    channel = run.beacon.providers["twilio"]
    real_send = channel.send
    accepted, release = asyncio.Event(), asyncio.Event()

    async def slow_to_return(message: Any) -> Any:
        sent = await real_send(message)
        accepted.set()
        await release.wait()  # Twilio has the message; the outbox does not know its sid yet
        return sent

    channel.send = slow_to_return  # type: ignore[method-assign]
    await run.twilio_inbound(PHONE, "JOIN")
    await asyncio.wait_for(accepted.wait(), 5)
    sid = run.twilio.messages[0].sid
    await report(run, sid, "delivered")
    release.set()
    await settle(run)

    async def applied() -> None:
        while (await status_of(run, sid))[0] != "delivered":
            await asyncio.sleep(0.01)

    await asyncio.wait_for(applied(), 3)


@pytest.mark.parametrize("template", [True, False], ids=["template", "sms"])
async def test_whatsapp_session_closed_falls_back(start_beacon: StartBeacon, template: bool) -> None:
    env = {"TWILIO_WHATSAPP_TEMPLATE_SID": TEMPLATE} if template else {}
    run = await start_beacon(twilio=True, **env)
    api = run.twilio
    [original, *_] = await say(run, WA, "JOIN")
    assert original.to == WA
    before = len(api.messages)
    await report(run, original.sid, "failed", "63016")
    await settle(run)
    await report(run, original.sid, "failed", "63016")  # Twilio repeats a callback: one fallback only
    await settle(run)
    [fallback] = api.messages[before:]
    if template:
        assert (fallback.to, fallback.from_, fallback.content_sid) == (WA, WHATSAPP_FROM, TEMPLATE)
        assert json.loads(fallback.content_variables or "{}") == {"1": original.body}
        # The template failed too: the same words by SMS.
        await report(run, fallback.sid, "undelivered", "63016")
        await settle(run)
        fallback = api.messages[-1]
    assert (fallback.to, fallback.from_, fallback.body) == (PHONE, SMS_FROM, original.body)
    assert fallback.status_callback == STATUS_URL
    assert await status_of(run, original.sid) == ("failed", "63016")
    await assert_each_row_sent_once(run)


# -- the webhook answers at once -----------------------------------------------------------------


async def test_webhook_answers_before_the_bot_runs(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    service = run.beacon.service
    real_process = service.process_batch

    release = asyncio.Event()

    async def held_process(inbound_ids: list[int]) -> Any:
        await release.wait()
        return await real_process(inbound_ids)

    service.process_batch = held_process  # type: ignore[method-assign]
    # A webhook that waited for the bot would never be answered while the bot is held.
    response = await asyncio.wait_for(run.twilio_inbound(PHONE, "JOIN"), timeout=30)
    assert response.status == 200
    assert run.twilio.messages == []  # answered before the bot said anything
    assert await count(run, schema.inbound) == 1  # stored (committed) before the answer
    release.set()
    await settle(run)
    assert run.twilio.messages


@pytest.mark.slow
async def test_webhook_latency_while_the_outbox_drains(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    api = run.twilio
    await say(run, PHONE, "JOIN")
    api.delay = 0.05
    async with run.beacon.db.write() as conn:  # a large send is under way
        await outbox.enqueue(conn, run.beacon.keys.ring, [
            Draft(None, None, "sms", f"+2348000{i:06d}", "Water at the school at 6pm") for i in range(6000)])
    run.beacon.sender.wake()
    await api.wait_for(lambda: len(api.messages) > 100)
    for i in range(20):  # answered while the large send goes on (how fast is bench/webhook_throughput.py's job)
        response = await run.twilio_inbound(f"+2349000{i:06d}", "JOIN")
        assert response.status == 200
    bulk = [m for m in api.messages if m.to.startswith("+2348000")]
    assert len(bulk) < 6000  # the large send was still going on meanwhile
    api.delay = 0
    await settle(run, timeout=60)
    await assert_each_row_sent_once(run)  # and all of it left, once


@pytest.mark.slow
async def test_a_burst_of_webhooks_is_stored_once_each(start_beacon: StartBeacon) -> None:
    """Concurrent webhooks share transactions: new and known people, SMS and WhatsApp, retries among them."""
    run = await start_beacon(twilio=True)
    await register(run)
    people = [f"+2347000{i:06d}" for i in range(15)]
    posts = []
    for i, person in enumerate(people):
        sid = "SM" + secrets.token_hex(16)
        posts += [(person, "JOIN", sid), (person, "JOIN", sid)]  # Twilio retried at once
        posts.append(("whatsapp:" + person if i % 2 else person, "HELP", None))  # same number, maybe another channel
    posts += [(PHONE, "MYDATA", None), (WA, "HELP", None)]
    responses = await asyncio.gather(*(run.twilio_inbound(who, text, sid=sid) for who, text, sid in posts))
    assert {r.status for r in responses} == {200}
    await settle(run)
    assert await count(run, schema.inbound) == 4 + 2 * len(people) + 2
    assert await count(run, schema.registrants) == 1 + len(people)
    assert await count(run, schema.identities) == 1 + len(people)
    async with run.beacon.db.read() as conn:
        orphans = (await conn.execute(select(func.count()).select_from(schema.inbound).where(
            schema.inbound.c.registrant_id.is_(None)))).scalar()
        channels = dict((await conn.execute(select(schema.identities.c.id, schema.identities.c.last_channel))).all())
    assert orphans == 0
    assert set(channels.values()) <= {"sms", "whatsapp"}
    for person in people:  # everyone got the welcome exactly once
        welcomes = [m for m in run.twilio.messages if m.to.removeprefix("whatsapp:") == person
                    and m.body.startswith("Welcome")]
        assert len(welcomes) == 1, person
        # ... and their second message was answered too (it belongs to them even in the same batch)
        assert len([m for m in run.twilio.messages if m.to.removeprefix("whatsapp:") == person]) > 2, person
    await assert_each_row_sent_once(run)
