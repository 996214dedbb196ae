"""TwilioChannel against the real SDK and a local Twilio API double; webhooks through a real aiohttp app."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from beacon.config import TwilioSettings
from channels.base import Outbound, Received, SendError, StatusUpdate, WebhookRejected
from channels.twilio import EMPTY_TWIML, MAX_BODY, TwilioChannel
from tests.doubles.twilio_api import TwilioDouble, sign, signed_form_post

ACCOUNT = "AC" + "1" * 32
TOKEN = "f" * 32
PUBLIC = "https://beacon.example.org"
LONG_CODE = "+15005550006"
SERVICE = "MG" + "2" * 32
WA_FROM = "whatsapp:+14155238886"
TEMPLATE = "HX" + "3" * 32
PERSON = "+4915112345678"
MESSAGE_SID = "SM" + "4" * 32
MESSAGES = "/webhooks/twilio/messages"
STATUS = "/webhooks/twilio/status"

MakeChannel = Callable[..., Awaitable[TwilioChannel]]


def twilio_settings(api_base_url: str, **overrides: Any) -> TwilioSettings:
    """Settings with a long-code SMS sender and a WhatsApp sender, changed by ``overrides``."""
    base = TwilioSettings(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        sms_from=LONG_CODE,
        messaging_service_sid=None,
        whatsapp_from=WA_FROM,
        api_base_url=api_base_url,
        rate_per_second=None,
        whatsapp_template_sid=None,
    )
    return replace(base, **overrides)


def outbound(channel: str = "sms", address: str = PERSON, text: str = "Stay safe", **kw: Any) -> Outbound:
    return Outbound(outbox_id=kw.pop("outbox_id", 1), channel=channel, address=address, text=text, **kw)


@pytest.fixture
async def double() -> AsyncIterator[TwilioDouble]:
    async with TwilioDouble(ACCOUNT, TOKEN) as api:
        yield api


@pytest.fixture
async def make_channel(double: TwilioDouble) -> AsyncIterator[MakeChannel]:
    """Started channels pointed at the double (rate limits off unless asked); closed afterwards."""
    made: list[TwilioChannel] = []

    async def make(*, rate_limits: bool = False, **overrides: Any) -> TwilioChannel:
        overrides.setdefault("api_base_url", double.base_url)
        channel = TwilioChannel(twilio_settings(**overrides), PUBLIC, rate_limits=rate_limits)
        await channel.start()
        made.append(channel)
        return channel

    yield make
    for channel in made:
        await channel.close()


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[TestClient[Any, Any], list[Received]]]:
    """A tiny app routing the channel's webhook paths to receive(); answers like the service would."""
    channel = TwilioChannel(twilio_settings("http://127.0.0.1:9"), PUBLIC)
    received: list[Received] = []

    async def handle(request: web.Request) -> web.Response:
        try:
            result = await channel.receive(request)
        except WebhookRejected as exc:
            return web.Response(status=exc.status, text=exc.reason)
        received.append(result)
        return web.Response(text=result.ack_body, content_type=result.ack_content_type)

    app = web.Application()
    for path in channel.webhook_paths:
        app.router.add_post(path, handle)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client, received
    await client.close()


async def post(
    client: TestClient[Any, Any], path: str, params: dict[str, str], *, url: str | None = None, **kw: Any
) -> tuple[int, str, str]:
    """POST a webhook signed for ``url`` (default: the public URL + path); status, content type, body."""
    headers, body = signed_form_post(kw.pop("token", TOKEN), url or PUBLIC + path, params)
    headers.update(kw.pop("headers", {}))
    async with client.post(path, data=kw.pop("data", body), headers=headers) as response:
        return response.status, response.content_type, await response.text()


def inbound_form(sender: str, **extra: str) -> dict[str, str]:
    form = {
        "MessageSid": MESSAGE_SID,
        "SmsSid": MESSAGE_SID,
        "AccountSid": ACCOUNT,
        "From": sender,
        "To": LONG_CODE,
        "Body": "Hilfe, ich brauche Wasser",
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }
    form.update(extra)
    return form


# -- receive -------------------------------------------------------------------

INBOUND_CASES = [
    ("sms", inbound_form(PERSON), "sms", None),
    ("whatsapp", inbound_form("whatsapp:" + PERSON, ProfileName="A", WaId=PERSON[1:]), "whatsapp", None),
    ("sms opt-out", inbound_form(PERSON, Body="STOP", OptOutType="STOP"), "sms", "STOP"),
    ("sms help", inbound_form(PERSON, Body="HELP", OptOutType="HELP"), "sms", "HELP"),
    ("empty OptOutType", inbound_form(PERSON, OptOutType=""), "sms", None),
]


@pytest.mark.parametrize(
    ("form", "kind", "opt_out"), [c[1:] for c in INBOUND_CASES], ids=[c[0] for c in INBOUND_CASES]
)
async def test_receive_inbound(webhook: Any, form: dict[str, str], kind: str, opt_out: str | None) -> None:
    client, received = webhook
    status, content_type, body = await post(client, MESSAGES, form)
    assert (status, content_type, body) == (200, "text/xml", EMPTY_TWIML)
    [result] = received
    [message] = result.messages
    assert result.statuses == []
    assert message.channel == kind
    assert message.address == PERSON  # the same person on SMS and WhatsApp has one address
    assert message.text == form["Body"]
    assert message.provider_id == MESSAGE_SID
    assert message.opt_out == opt_out
    assert timedelta(0) <= datetime.now(UTC) - message.received_at < timedelta(seconds=5)


async def test_signature_uses_public_url_not_host(webhook: Any) -> None:
    client, received = webhook
    form = inbound_form(PERSON)
    status, _, _ = await post(client, MESSAGES, form, headers={"Host": "attacker.example"})
    assert status == 200
    status, _, _ = await post(client, MESSAGES + "?attempt=2", form, url=PUBLIC + MESSAGES + "?attempt=2")
    assert status == 200
    assert len(received) == 2


def _oversize() -> dict[str, str]:
    return inbound_form(PERSON, Body="x" * (MAX_BODY + 1))


async def _chunks() -> AsyncIterator[bytes]:
    for _ in range(5):
        yield b"Body=" + b"x" * (MAX_BODY // 4) + b"&"


REJECT_CASES: list[tuple[str, str, dict[str, str], dict[str, Any], int]] = [
    ("no signature", MESSAGES, inbound_form(PERSON), {"headers": {"X-Twilio-Signature": ""}}, 403),
    ("wrong token", MESSAGES, inbound_form(PERSON), {"token": "0" * 32}, 403),
    ("signed for the Host-derived URL", MESSAGES, inbound_form(PERSON), {"url": "host"}, 403),
    ("tampered body", MESSAGES, inbound_form(PERSON), {"data": "MessageSid=SMx&From=%2B1555&Body=hi"}, 403),
    ("garbage signature", STATUS, {"MessageSid": MESSAGE_SID}, {"headers": {"X-Twilio-Signature": "AAAA"}}, 403),
    ("oversize with length", MESSAGES, _oversize(), {}, 413),
    ("oversize chunked", MESSAGES, inbound_form(PERSON), {"data": "chunked"}, 413),
    ("no MessageSid", MESSAGES, {"From": PERSON, "Body": "hi"}, {}, 400),
    ("no From", MESSAGES, {"MessageSid": MESSAGE_SID, "Body": "hi"}, {}, 400),
    ("status without MessageStatus", STATUS, {"MessageSid": MESSAGE_SID}, {}, 400),
    ("status without MessageSid", STATUS, {"MessageStatus": "sent"}, {}, 400),
]


@pytest.mark.parametrize(
    ("path", "form", "options", "expected"), [c[1:] for c in REJECT_CASES], ids=[c[0] for c in REJECT_CASES]
)
async def test_receive_rejects(
    webhook: Any, path: str, form: dict[str, str], options: dict[str, Any], expected: int
) -> None:
    client, received = webhook
    if options.get("url") == "host":
        options["url"] = str(client.make_url(path))
    if options.get("data") == "chunked":
        options["data"] = _chunks()
    status, _, _ = await post(client, path, form, **options)
    assert status == expected
    assert received == []


STATUS_CASES = [
    ("accepted", "accepted", None, "queued", None),
    ("queued", "queued", None, "queued", None),
    ("sending", "sending", None, "queued", None),
    ("sent", "sent", None, "sent", None),
    ("delivered", "delivered", None, "delivered", None),
    ("read", "read", None, "read", None),
    ("undelivered 30003", "undelivered", "30003", "undelivered", "30003"),
    ("failed 63016", "failed", "63016", "failed", "63016"),
    ("empty ErrorCode", "delivered", "", "delivered", None),
    ("unknown kept", "partially_delivered", None, "partially_delivered", None),
]


@pytest.mark.parametrize(
    ("twilio_status", "error_code", "status", "code"),
    [c[1:] for c in STATUS_CASES],
    ids=[c[0] for c in STATUS_CASES],
)
async def test_status_callback(
    webhook: Any, twilio_status: str, error_code: str | None, status: str, code: str | None
) -> None:
    client, received = webhook
    form = {"MessageSid": MESSAGE_SID, "MessageStatus": twilio_status, "SmsStatus": twilio_status,
            "AccountSid": ACCOUNT, "From": LONG_CODE, "To": PERSON, "ApiVersion": "2010-04-01"}
    if error_code is not None:
        form["ErrorCode"] = error_code
    http_status, _, body = await post(client, STATUS, form)
    assert (http_status, body) == (200, "")
    [result] = received
    assert result.messages == []
    assert result.statuses == [StatusUpdate(MESSAGE_SID, status, code)]


def test_sign_matches_sdk_validation() -> None:
    params = {"b": "2", "a": "1"}
    assert RequestValidator(TOKEN).validate(PUBLIC + "/x", params, sign(TOKEN, PUBLIC + "/x", params))


# -- send ------------------------------------------------------------------------

SEND_CASES: list[tuple[str, dict[str, Any], Outbound, dict[str, Any]]] = [
    (
        "sms from long code",
        {},
        outbound(),
        {"to": PERSON, "from_": LONG_CODE, "messaging_service_sid": None, "body": "Stay safe"},
    ),
    (
        "sms via messaging service",
        {"messaging_service_sid": SERVICE},
        outbound(),
        {"to": PERSON, "from_": None, "messaging_service_sid": SERVICE, "body": "Stay safe"},
    ),
    (
        "whatsapp session text",
        {"whatsapp_template_sid": TEMPLATE},
        outbound("whatsapp"),
        {"to": "whatsapp:" + PERSON, "from_": WA_FROM, "body": "Stay safe", "content_sid": None},
    ),
    (
        "whatsapp template",
        {"whatsapp_template_sid": TEMPLATE},
        outbound("whatsapp", text="Wasser um 18 Uhr", template=True),
        {
            "to": "whatsapp:" + PERSON,
            "from_": WA_FROM,
            "body": "",
            "content_sid": TEMPLATE,
            "content_variables": json.dumps({"1": "Wasser um 18 Uhr"}),
        },
    ),
    (
        "template asked but none configured",
        {},
        outbound("whatsapp", template=True),
        {"to": "whatsapp:" + PERSON, "body": "Stay safe", "content_sid": None},
    ),
]


@pytest.mark.parametrize(
    ("overrides", "message", "stored"), [c[1:] for c in SEND_CASES], ids=[c[0] for c in SEND_CASES]
)
async def test_send(
    double: TwilioDouble, make_channel: MakeChannel, overrides: dict[str, Any], message: Outbound,
    stored: dict[str, Any],
) -> None:
    channel = await make_channel(**overrides)
    sent = await channel.send(message)
    [accepted] = double.messages
    assert sent.provider_id == accepted.sid and sent.provider_id.startswith("SM")
    assert sent.status == "queued"  # "accepted" (Messaging Service) and "queued" both map to queued
    assert accepted.status_callback == PUBLIC + STATUS
    for name, value in stored.items():
        assert getattr(accepted, name) == value, name


async def test_send_with_no_sender_for_the_kind(make_channel: MakeChannel) -> None:
    channel = await make_channel(whatsapp_from=None)
    with pytest.raises(SendError) as caught:
        await channel.send(outbound("whatsapp"))
    assert caught.value.permanent


def _number_error(code: int) -> Callable[[TwilioDouble], None]:
    return lambda api: api.error_for_number(PERSON, code)


def _fail(status: int, code: int) -> Callable[[TwilioDouble], None]:
    return lambda api: api.fail_next(1, status, code, f"failure for {PERSON}")


# name, double setup, channel overrides, (code, permanent, unreachable, opted_out, retry_after)
ERROR_CASES: list[tuple[str, Callable[[TwilioDouble], None], dict[str, Any], tuple[Any, ...]]] = [
    ("21211 invalid number", _number_error(21211), {}, ("21211", True, True, False, None)),
    ("21614 not mobile", _number_error(21614), {}, ("21614", True, True, False, None)),
    ("30003 unreachable", _number_error(30003), {}, ("30003", True, True, False, None)),
    ("30005 unknown handset", _number_error(30005), {}, ("30005", True, True, False, None)),
    ("30006 landline", _number_error(30006), {}, ("30006", True, True, False, None)),
    ("21610 unsubscribed", _number_error(21610), {}, ("21610", True, False, True, None)),
    ("21408 region not enabled", _number_error(21408), {}, ("21408", True, False, False, None)),
    ("other 400", _fail(400, 21606), {}, ("21606", True, False, False, None)),
    # Credentials being rotated: retried, never a permanent failure of the queued message.
    ("wrong credentials 401", lambda api: None, {"auth_token": "0" * 32}, ("20003", False, False, False, None)),
    ("401 without a code", _fail(401, 0), {}, ("401", False, False, False, None)),
    ("429 with Retry-After", lambda api: api.rate_limit_next(1, 2), {}, ("20429", False, False, False, 2.0)),
    ("429 without Retry-After", lambda api: api.rate_limit_next(1), {}, ("20429", False, False, False, None)),
    ("503 outage", lambda api: api.outage(True), {}, ("20503", False, False, False, None)),
    ("500", _fail(500, 20500), {}, ("20500", False, False, False, None)),
    ("timeout", lambda api: setattr(api, "delay", 1.0), {}, ("timeout", False, False, False, None)),
    ("connection refused", lambda api: None, {"api_base_url": "http://127.0.0.1:9"},
     ("connection", False, False, False, None)),
]


@pytest.mark.parametrize(
    ("setup", "overrides", "expected"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
async def test_send_errors(
    double: TwilioDouble, make_channel: MakeChannel, setup: Callable[[TwilioDouble], None],
    overrides: dict[str, Any], expected: tuple[Any, ...],
) -> None:
    channel = await make_channel(**overrides)
    channel.send_timeout = 0.3
    setup(double)
    with pytest.raises(SendError) as caught:
        await channel.send(outbound(text="private words"))
    error = caught.value
    assert (error.code, error.permanent, error.unreachable, error.opted_out, error.retry_after) == expected
    assert PERSON not in str(error) and "private" not in str(error)
    assert error.__cause__ is None and error.__suppress_context__


async def test_invalid_address_is_unreachable(make_channel: MakeChannel) -> None:
    channel = await make_channel()
    with pytest.raises(SendError) as caught:
        await channel.send(outbound(address="0151 1234"))
    assert (caught.value.code, caught.value.unreachable) == ("21211", True)


async def test_transient_error_then_success(double: TwilioDouble, make_channel: MakeChannel) -> None:
    channel = await make_channel()
    double.outage(True)
    with pytest.raises(SendError):
        await channel.send(outbound())
    double.outage(False)
    sent = await channel.send(outbound())
    assert [m.sid for m in double.sent_to(PERSON)] == [sent.provider_id]


async def test_retry_after_belongs_to_the_send_that_got_it(double: TwilioDouble, make_channel: MakeChannel) -> None:
    channel = await make_channel()
    double.rate_limit_next(5, retry_after=3)
    results = await asyncio.gather(*(channel.send(outbound(outbox_id=i)) for i in range(10)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, SendError)]
    assert [e.retry_after for e in errors] == [3.0] * 5
    assert len(double.messages) == 5


# name, channel overrides, sends, minimum span, maximum span (seconds, loose)
RATE_CASES = [
    ("long code 1/s", {}, 3, 1.5, 10.0),
    ("messaging service 100/s", {"messaging_service_sid": SERVICE}, 20, 0.0, 1.0),
    ("short code 100/s", {"sms_from": "12345"}, 20, 0.0, 1.0),
    ("configured 4/s", {"rate_per_second": 4.0}, 6, 0.3, 5.0),
]


@pytest.mark.parametrize(
    ("overrides", "count", "at_least", "at_most"), [c[1:] for c in RATE_CASES], ids=[c[0] for c in RATE_CASES]
)
@pytest.mark.slow
async def test_rate_limit_spacing(
    double: TwilioDouble, make_channel: MakeChannel, overrides: dict[str, Any], count: int, at_least: float,
    at_most: float,
) -> None:
    channel = await make_channel(rate_limits=True, **overrides)
    await asyncio.gather(*(channel.send(outbound(outbox_id=i)) for i in range(count)))
    arrivals = sorted(m.arrived for m in double.messages)
    assert len(arrivals) == count
    assert at_least <= arrivals[-1] - arrivals[0] <= at_most


async def test_whatsapp_sender_defaults_to_80_per_second(double: TwilioDouble, make_channel: MakeChannel) -> None:
    channel = await make_channel(rate_limits=True)
    started = time.monotonic()
    await asyncio.gather(*(channel.send(outbound("whatsapp", outbox_id=i)) for i in range(120)))
    arrivals = sorted(m.arrived for m in double.messages)
    assert len(arrivals) == 120
    # A burst of 80, then 80 a second: the last 40 need about half a second, not the long code's 40.
    assert 0.3 <= arrivals[-1] - started <= 2.0


async def test_senders_have_separate_limits(double: TwilioDouble, make_channel: MakeChannel) -> None:
    channel = await make_channel(rate_limits=True)
    started = time.monotonic()
    await asyncio.gather(channel.send(outbound()), channel.send(outbound("whatsapp")))
    assert time.monotonic() - started < 0.9
    assert len(double.messages) == 2


@pytest.mark.slow
async def test_200_concurrent_sends(double: TwilioDouble, make_channel: MakeChannel) -> None:
    channel = await make_channel(rate_limits=False)
    double.delay = 0.05
    numbers = [f"+4915100{i:05d}" for i in range(200)]
    sent = await asyncio.gather(*(channel.send(outbound(address=n, outbox_id=i)) for i, n in enumerate(numbers)))
    assert len({s.provider_id for s in sent}) == 200
    assert sorted(m.to for m in double.messages) == numbers
    await double.wait_for(lambda: double.requests == 200, timeout=1)


async def test_send_before_start_fails(double: TwilioDouble) -> None:
    channel = TwilioChannel(twilio_settings(double.base_url), PUBLIC)
    with pytest.raises(RuntimeError):
        await channel.send(outbound())


# -- fallback and acknowledge ----------------------------------------------------------

WA = outbound("whatsapp", outbox_id=7)
FALLBACK_CASES: list[tuple[str, dict[str, Any], Outbound, str | None, Outbound | None]] = [
    ("template", {"whatsapp_template_sid": TEMPLATE}, WA, "63016", replace(WA, template=True)),
    ("sms when no template", {}, WA, "63016", replace(WA, channel="sms")),
    ("sms via service", {"sms_from": None, "messaging_service_sid": SERVICE}, WA, "63016",
     replace(WA, channel="sms")),
    ("template failed too", {"whatsapp_template_sid": TEMPLATE}, replace(WA, template=True), "63016",
     replace(WA, channel="sms")),
    ("nothing to fall back to", {"sms_from": None}, WA, "63016", None),
    ("other error", {"whatsapp_template_sid": TEMPLATE}, WA, "30003", None),
    ("no error", {}, WA, None, None),
    ("sms is not retried", {"whatsapp_template_sid": TEMPLATE}, outbound("sms"), "63016", None),
]


@pytest.mark.parametrize(
    ("overrides", "original", "code", "expected"),
    [c[1:] for c in FALLBACK_CASES],
    ids=[c[0] for c in FALLBACK_CASES],
)
def test_fallback_for(
    overrides: dict[str, Any], original: Outbound, code: str | None, expected: Outbound | None
) -> None:
    channel = TwilioChannel(twilio_settings("http://127.0.0.1:9", **overrides), PUBLIC)
    assert channel.fallback_for(StatusUpdate("SM1", "failed", code), original) == expected


async def test_acknowledge_is_a_no_op(webhook: Any, double: TwilioDouble, make_channel: MakeChannel) -> None:
    channel = await make_channel()
    client, received = webhook
    await post(client, MESSAGES, inbound_form(PERSON))
    await channel.acknowledge(received[0].messages[0])
    assert double.requests == 0
