"""TwilioChannel against the real SDK and a local Twilio API double; webhook calls handed to receive() directly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from aiolimiter import AsyncLimiter
from twilio.request_validator import RequestValidator

from channels.base import Outbound, SendError, StatusUpdate, WebhookCall, WebhookRejected
from channels.limits import Limiters, rate_limiter
from channels.settings import TwilioSettings
from channels.twilio import EMPTY_TWIML, TwilioChannel
from tests.doubles.limits import Gates
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

    async def make(*, rate_limits: bool = False, limiters: Limiters = rate_limiter, **overrides: Any) -> TwilioChannel:
        overrides.setdefault("api_base_url", double.base_url)
        channel = TwilioChannel(twilio_settings(**overrides), PUBLIC, rate_limits=rate_limits, limiters=limiters)
        await channel.start()
        made.append(channel)
        return channel

    yield make
    for channel in made:
        await channel.close()


def call(path: str, form: dict[str, str], *, token: str = TOKEN, signed_for: str | None = None,
         url: str | None = None, body: bytes | None = None, signature: str | None = None) -> WebhookCall:
    """A webhook call to ``url`` (default: the public URL + path), signed for ``signed_for`` (default: ``url``)."""
    url = url or PUBLIC + path
    headers, encoded = signed_form_post(token, signed_for or url, form)
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return WebhookCall(path, url, headers, encoded.encode() if body is None else body)


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


def status_form(status: str, error_code: str | None = None) -> dict[str, str]:
    form = {"MessageSid": MESSAGE_SID, "MessageStatus": status, "SmsStatus": status, "AccountSid": ACCOUNT,
            "From": LONG_CODE, "To": PERSON, "ApiVersion": "2010-04-01"}
    if error_code is not None:
        form["ErrorCode"] = error_code
    return form


def inbound(kind: str, text: str = "Hilfe, ich brauche Wasser", opt_out: str | None = None) -> dict[str, Any]:
    """The fields an Inbound from PERSON is expected to have (received_at is checked apart)."""
    return {"channel": kind, "address": PERSON, "text": text, "provider_id": MESSAGE_SID, "opt_out": opt_out}


# -- receive -------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One webhook call and what receive() makes of it: 200 with messages and statuses, or a rejection."""

    label: str
    call: WebhookCall
    status: int = 200
    messages: tuple[dict[str, Any], ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()


def status_case(twilio_status: str, error_code: str | None, status: str, code: str | None) -> Case:
    label = f"status {twilio_status}" + (f" {error_code!r}" if error_code is not None else "")
    return Case(label, call(STATUS, status_form(twilio_status, error_code)),
                statuses=(StatusUpdate(MESSAGE_SID, status, code),))


RECEIVE_CASES = [
    Case("sms", call(MESSAGES, inbound_form(PERSON)), messages=(inbound("sms"),)),
    Case("whatsapp", call(MESSAGES, inbound_form("whatsapp:" + PERSON, ProfileName="A", WaId=PERSON[1:])),
         messages=(inbound("whatsapp"),)),  # the same person on SMS and WhatsApp has one address
    Case("sms opt-out", call(MESSAGES, inbound_form(PERSON, Body="STOP", OptOutType="STOP")),
         messages=(inbound("sms", "STOP", "STOP"),)),
    Case("sms help", call(MESSAGES, inbound_form(PERSON, Body="HELP", OptOutType="HELP")),
         messages=(inbound("sms", "HELP", "HELP"),)),
    Case("empty OptOutType", call(MESSAGES, inbound_form(PERSON, OptOutType="")), messages=(inbound("sms"),)),
    Case("query string signed with the URL", call(MESSAGES, inbound_form(PERSON), url=PUBLIC + MESSAGES + "?a=2"),
         messages=(inbound("sms"),)),
    Case("no signature", call(MESSAGES, inbound_form(PERSON), signature=""), 403),
    Case("wrong token", call(MESSAGES, inbound_form(PERSON), token="0" * 32), 403),
    Case("signed for another URL", call(MESSAGES, inbound_form(PERSON), signed_for="http://127.0.0.1" + MESSAGES),
         403),
    Case("query string not signed", call(MESSAGES, inbound_form(PERSON), url=PUBLIC + MESSAGES + "?a=2",
                                         signed_for=PUBLIC + MESSAGES), 403),
    Case("tampered body", call(MESSAGES, inbound_form(PERSON), body=b"MessageSid=SMx&From=%2B1555&Body=hi"), 403),
    Case("garbage signature", call(STATUS, {"MessageSid": MESSAGE_SID}, signature="AAAA"), 403),
    Case("not UTF-8", call(MESSAGES, {}, body=b"Body=\xff"), 400),
    Case("no MessageSid", call(MESSAGES, {"From": PERSON, "Body": "hi"}), 400),
    Case("no From", call(MESSAGES, {"MessageSid": MESSAGE_SID, "Body": "hi"}), 400),
    Case("status without MessageStatus", call(STATUS, {"MessageSid": MESSAGE_SID}), 400),
    Case("status without MessageSid", call(STATUS, {"MessageStatus": "sent"}), 400),
    Case("not a Twilio path", call("/webhooks/telegram", inbound_form(PERSON)), 404),
    status_case("accepted", None, "queued", None),
    status_case("queued", None, "queued", None),
    status_case("sending", None, "queued", None),
    status_case("sent", None, "sent", None),
    status_case("delivered", None, "delivered", None),
    status_case("read", None, "read", None),
    status_case("undelivered", "30003", "undelivered", "30003"),
    status_case("failed", "63016", "failed", "63016"),
    status_case("delivered", "", "delivered", None),
    status_case("partially_delivered", None, "partially_delivered", None),  # an unknown status is kept
]


@pytest.mark.parametrize("case", RECEIVE_CASES, ids=[case.label for case in RECEIVE_CASES])
async def test_receive(case: Case) -> None:
    channel = TwilioChannel(twilio_settings("http://127.0.0.1:9"), PUBLIC)
    before = datetime.now(UTC)
    try:
        received = await channel.receive(case.call)
    except WebhookRejected as exc:
        assert exc.status == case.status
        return
    after = datetime.now(UTC)
    assert case.status == 200
    fields = [{name: getattr(message, name) for name in expected}
              for message, expected in zip(received.messages, case.messages, strict=True)]
    assert fields == list(case.messages)
    assert all(before <= message.received_at <= after for message in received.messages)
    assert received.statuses == list(case.statuses)
    # an inbound message is answered with empty TwiML, a status callback with an empty body
    ack = (EMPTY_TWIML, "text/xml") if case.messages else ("", "text/plain")
    assert (received.ack_body, received.ack_content_type) == ack


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


# name, channel overrides, channel, the sender's rate (messages a second)
RATE_CASES = [
    ("long code 1/s", {}, "sms", 1.0),
    ("messaging service 100/s", {"messaging_service_sid": SERVICE}, "sms", 100.0),
    ("short code 100/s", {"sms_from": "12345"}, "sms", 100.0),
    ("whatsapp sender 80/s", {}, "whatsapp", 80.0),
    ("configured 4/s", {"rate_per_second": 4.0}, "sms", 4.0),
    ("configured 4/s on whatsapp", {"rate_per_second": 4.0}, "whatsapp", 4.0),
]


@pytest.mark.parametrize(
    ("overrides", "kind", "rate"), [c[1:] for c in RATE_CASES], ids=[c[0] for c in RATE_CASES]
)
async def test_each_send_passes_its_senders_limit(
    double: TwilioDouble, make_channel: MakeChannel, overrides: dict[str, Any], kind: str, rate: float
) -> None:
    gates = Gates()
    channel = await make_channel(rate_limits=True, limiters=gates, **overrides)
    await asyncio.gather(*(channel.send(outbound(kind, outbox_id=i)) for i in range(3)))
    assert gates.rates == [rate]  # one limiter for the sender, made on its first send
    assert gates.made[0].passed == 3 and len(double.messages) == 3


async def test_a_send_waits_for_its_limit_and_only_its_own(double: TwilioDouble, make_channel: MakeChannel) -> None:
    gates = Gates()
    channel = await make_channel(rate_limits=True, limiters=gates)
    gates.shut = True
    sms, whatsapp = (asyncio.create_task(channel.send(outbound(kind))) for kind in ("sms", "whatsapp"))
    await gates.until(lambda: [gate.waiting for gate in gates.made] == [1, 1])
    assert double.messages == []  # nothing reaches Twilio before its sender's limit lets it
    sms_gate, whatsapp_gate = gates.made
    whatsapp_gate.open()
    await whatsapp
    assert [m.to for m in double.messages] == ["whatsapp:" + PERSON] and not sms.done()
    sms_gate.open()
    await sms
    assert [m.to for m in double.messages] == ["whatsapp:" + PERSON, PERSON]


async def test_no_limits_when_rate_limits_are_off(double: TwilioDouble, make_channel: MakeChannel) -> None:
    gates = Gates()
    channel = await make_channel(rate_limits=False, limiters=gates)
    await channel.send(outbound())
    assert gates.made == [] and len(double.messages) == 1


@pytest.mark.parametrize(
    ("rate", "burst", "period"), [(0.5, 1, 2.0), (1.0, 1, 1.0), (4.0, 4, 1.0), (80.0, 80, 1.0)],
    ids=["one every 2 s", "1/s", "4/s", "80/s"],
)
def test_rate_limiter_lets_a_burst_through_per_period(rate: float, burst: int, period: float) -> None:
    limiter = rate_limiter(rate)
    assert isinstance(limiter, AsyncLimiter)
    assert (limiter.max_rate, limiter.time_period) == (burst, period)


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


async def test_acknowledge_is_a_no_op(double: TwilioDouble, make_channel: MakeChannel) -> None:
    channel = await make_channel()
    received = await channel.receive(call(MESSAGES, inbound_form(PERSON)))
    await channel.acknowledge(received.messages[0])
    assert double.requests == 0
