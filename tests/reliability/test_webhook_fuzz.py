"""10,000 generated webhook bodies against a running app: never a 5xx, nothing stored without authentication.

Hypothesis generates form bodies for /webhooks/twilio/messages and /webhooks/twilio/status (realistic fields
with arbitrary values, and arbitrary fields; signed with the right X-Twilio-Signature, or unsigned, or signed
wrongly) and Telegram updates for /webhooks/telegram (realistic updates, arbitrary JSON and non-JSON bytes;
with the right secret header, a wrong one, or none). Checked for every request: no 5xx; a correctly signed
Twilio form is not refused as forged; every unauthenticated request is refused with a 4xx (403, or 400 for
a body that is not even a form) and leaves the ``inbound`` table as it was. /healthz still answers 200 at the end.

Hypothesis runs in a worker thread and hands each request to the app's event loop, so a failure is shrunk
to a small example as usual.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from registry import schema
from tests.conftest import AUTH_TOKEN, TELEGRAM_SECRET, Running, StartBeacon
from tests.doubles.telegram_api import callback_update, contact_update, message_update
from tests.doubles.twilio_api import sign

T = TypeVar("T")
FORM = "application/x-www-form-urlencoded; charset=utf-8"
# How many bodies each (endpoint, authenticated?) run sends: 10,000 in all.
RUNS = {("twilio_messages", True): 2000, ("twilio_messages", False): 1500,
        ("twilio_status", True): 1500, ("twilio_status", False): 1500,
        ("telegram", True): 2000, ("telegram", False): 1500}
TWILIO_FIELDS = ["MessageSid", "SmsSid", "SmsMessageSid", "AccountSid", "MessagingServiceSid", "From", "To", "Body",
                 "NumMedia", "NumSegments", "OptOutType", "MessageStatus", "SmsStatus", "ErrorCode", "ErrorMessage",
                 "ButtonPayload", "ButtonText", "ProfileName", "WaId", "MediaUrl0", "MediaContentType0", "ApiVersion",
                 "FromCountry", "ChannelToAddress", "RawDlrDoneDate"]
STATUSES = ["queued", "accepted", "sending", "sent", "delivered", "read", "undelivered", "failed", "canceled",
            "receiving", "received", "scheduled"]

text = st.text(max_size=60)
sids = st.one_of(st.tuples(st.sampled_from(["SM", "MM"]), st.binary(min_size=16, max_size=16)).map(
    lambda t: t[0] + t[1].hex()), text)
numbers = st.one_of(st.tuples(st.sampled_from(["", "whatsapp:"]), st.integers(10**6, 10**15 - 1)).map(
    lambda t: f"{t[0]}+{t[1]}"), text)
values = st.one_of(text, numbers, st.sampled_from(STATUSES + ["STOP", "START", "JOIN", "HELP", "1", "2", ""]),
                   st.integers(-10**20, 10**20).map(str))
any_fields = st.dictionaries(st.one_of(st.sampled_from(TWILIO_FIELDS), st.text(max_size=12)), values, max_size=10)


@st.composite
def twilio_message(draw: st.DrawFn) -> dict[str, str]:
    """An inbound message form: mostly shaped like Twilio's, sometimes anything at all."""
    fields = draw(any_fields)
    if draw(st.booleans()):
        fields.update(MessageSid=draw(sids), From=draw(numbers), Body=draw(values))
    return fields


@st.composite
def twilio_status(draw: st.DrawFn) -> dict[str, str]:
    """A status callback form: a sid, a status and maybe an error code, or anything at all."""
    fields = draw(any_fields)
    if draw(st.booleans()):
        fields.update(MessageSid=draw(sids), MessageStatus=draw(st.one_of(st.sampled_from(STATUSES), text)))
        if draw(st.booleans()):
            fields["ErrorCode"] = draw(st.one_of(st.sampled_from(["63016", "21610", "30003", "21211", "30008"]),
                                                 values))
    return fields


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=12)
chat_ids = st.integers(-2**63, 2**63)


@st.composite
def telegram_body(draw: st.DrawFn) -> bytes:
    """A Bot API update as Telegram posts it, a damaged one, arbitrary JSON, or bytes that are not JSON."""
    kind = draw(st.sampled_from(["message", "callback", "contact", "damaged", "json", "bytes"]))
    update_id = draw(st.integers(-2**40, 2**40))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "message":
        update = message_update(update_id, draw(chat_ids), draw(values), draw(st.sampled_from(["en", "ar", None])))
    elif kind == "callback":
        update = callback_update(update_id, draw(chat_ids), draw(text), draw(st.integers(-2**40, 2**40)))
    elif kind == "contact":
        update = contact_update(update_id, draw(chat_ids), draw(numbers), draw(st.none() | chat_ids))
    else:
        update = message_update(update_id, draw(chat_ids), draw(text))
        target = draw(st.sampled_from([update, update["message"], update["message"]["chat"]]))
        target[draw(st.sampled_from(sorted(target)))] = draw(json_values)
    return json.dumps(update).encode()


def wrong_signature(draw: st.DrawFn, url: str, fields: dict[str, str]) -> dict[str, str]:
    """No signature, garbage, another token's, another URL's, or the signature of other fields."""
    how = draw(st.sampled_from(["none", "garbage", "token", "url", "fields"]))
    if how == "none":
        return {}
    if how == "garbage":
        return {"X-Twilio-Signature": draw(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126)))}
    if how == "token":
        return {"X-Twilio-Signature": sign("0" * 32, url, fields)}
    if how == "url":
        return {"X-Twilio-Signature": sign(AUTH_TOKEN, url + "/", fields)}
    return {"X-Twilio-Signature": sign(AUTH_TOKEN, url, {**fields, "Body": "tampered" + fields.get("Body", "")})}


class Fuzzer:
    """Sends generated requests to the app on its own loop, from Hypothesis's thread."""

    def __init__(self, running: Running, loop: asyncio.AbstractEventLoop) -> None:
        self.running, self.loop = running, loop
        self.sent: Counter[tuple[str, bool]] = Counter()
        self.statuses: Counter[tuple[str, bool, int]] = Counter()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        response = await self.running.client.post(path, data=body, headers=headers)
        await response.read()
        return response.status

    def send(self, endpoint: str, authenticated: bool, path: str, body: bytes, headers: dict[str, str]) -> int:
        status = self.call(self.post(path, body, headers))
        self.sent[endpoint, authenticated] += 1
        self.statuses[endpoint, authenticated, status] += 1
        assert status < 500, f"{status} from {path} for {body[:300]!r} with {headers}"
        return status

    async def stored(self) -> int:
        async with self.running.beacon.db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(schema.inbound))).scalar_one())


def run(examples: int, strategy: st.SearchStrategy[Any], body: Callable[[Any], None]) -> None:
    """``body`` for ``examples`` generated values (Hypothesis drives it; a failure is shrunk)."""

    @given(strategy)
    @settings(max_examples=examples, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate, Phase.shrink],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    def property_(value: Any) -> None:
        body(value)

    property_()


def fuzz_twilio(fuzzer: Fuzzer, endpoint: str, path: str, forms: st.SearchStrategy[dict[str, str]]) -> None:
    url = fuzzer.running.settings.public_url + path

    def signed(fields: dict[str, str]) -> None:
        body = urlencode(fields).encode()
        headers = {"Content-Type": FORM, "X-Twilio-Signature": sign(AUTH_TOKEN, url, fields)}
        status = fuzzer.send(endpoint, True, path, body, headers)
        assert status != 403, f"a correctly signed form was refused: {fields!r}"

    @st.composite
    def forged(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
        if draw(st.integers(0, 9)) == 0:  # not even a form
            return draw(st.binary(max_size=300)), {"Content-Type": FORM, **wrong_signature(draw, url, {})}
        fields = draw(forms)
        return urlencode(fields).encode(), {"Content-Type": FORM, **wrong_signature(draw, url, fields)}

    def unsigned(request: tuple[bytes, dict[str, str]]) -> None:
        status = fuzzer.send(endpoint, False, path, *request)
        assert 400 <= status < 500, f"{status} for an unsigned request {request!r}"

    run(RUNS[endpoint, True], forms, signed)
    before = fuzzer.call(fuzzer.stored())
    run(RUNS[endpoint, False], forged(), unsigned)
    assert fuzzer.call(fuzzer.stored()) == before, "an unsigned Twilio webhook was stored"


def fuzz_telegram(fuzzer: Fuzzer) -> None:
    path = "/webhooks/telegram"
    header = "X-Telegram-Bot-Api-Secret-Token"

    def authentic(body: bytes) -> None:
        fuzzer.send("telegram", True, path, body, {"Content-Type": "application/json", header: TELEGRAM_SECRET})

    wrong = st.one_of(st.none(), st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=64),
                      st.just(TELEGRAM_SECRET[:-1]), st.just(TELEGRAM_SECRET + "x"), st.just(TELEGRAM_SECRET.upper()))

    def forged(request: tuple[bytes, str | None]) -> None:
        body, secret = request
        headers = {"Content-Type": "application/json"} | ({} if secret is None else {header: secret})
        status = fuzzer.send("telegram", False, path, body, headers)
        assert 400 <= status < 500, f"{status} for an update without the secret {request!r}"

    run(RUNS["telegram", True], telegram_body(), authentic)
    before = fuzzer.call(fuzzer.stored())
    run(RUNS["telegram", False], st.tuples(telegram_body(), wrong), forged)
    assert fuzzer.call(fuzzer.stored()) == before, "an unauthenticated Telegram update was stored"


@pytest.mark.slow
async def test_ten_thousand_webhook_bodies(start_beacon: StartBeacon) -> None:
    running = await start_beacon(twilio=True, telegram=True, worker=False)
    fuzzer = Fuzzer(running, asyncio.get_running_loop())

    def everything() -> None:
        fuzz_twilio(fuzzer, "twilio_messages", "/webhooks/twilio/messages", twilio_message())
        fuzz_twilio(fuzzer, "twilio_status", "/webhooks/twilio/status", twilio_status())
        fuzz_telegram(fuzzer)

    await asyncio.to_thread(everything)
    stored = await fuzzer.stored()
    print(f"\nwebhook fuzz: {sum(fuzzer.sent.values())} requests, {stored} inbound rows stored; statuses "
          + ", ".join(f"{e}{'' if a else ' unauthenticated'} {s}: {n}"
                      for (e, a, s), n in sorted(fuzzer.statuses.items())))
    assert sum(fuzzer.sent.values()) >= 0.95 * sum(RUNS.values()), fuzzer.sent
    health = await running.client.get("/healthz")
    assert health.status == 200, await health.text()
