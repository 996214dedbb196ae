"""TelegramChannel with the real python-telegram-bot against the local Bot API double; webhook calls handed to
receive() directly; rate limits and flood-control waits through injected limiters and sleep."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs
from telegram import Bot
from telegram.error import InvalidToken

from bot.i18n import LANGUAGES, gettext_for
from channels.base import Button, Inbound, Outbound, SendError, WebhookCall, WebhookRejected
from channels.settings import TelegramSettings
from channels.telegram import (
    COMMANDS,
    TelegramChannel,
    delete_webhook,
    set_commands,
    set_webhook,
    split_text,
)
from tests.doubles.limits import Gates
from tests.doubles.telegram_api import TelegramDouble, callback_update, contact_update, message_update

TOKEN = "123456789:TEST-token"
SECRET = "hook-secret_0123456789"
CHAT = 4242001

# PTB 22 itself warns, while building RetryAfter, that retry_after will become a timedelta.
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")

def settings_for(api: TelegramDouble, token: str = TOKEN) -> TelegramSettings:
    return TelegramSettings(bot_token=token, webhook_secret=SECRET, api_base_url=api.base_url, rate_per_second=30.0)


@pytest.fixture
async def api() -> AsyncIterator[TelegramDouble]:
    double = TelegramDouble(TOKEN)
    await double.start()
    yield double
    await double.close()


class Pauses:
    """A ``sleep`` for the channel: records each flood-control wait and returns at once."""

    def __init__(self) -> None:
        self.waited: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waited.append(seconds)


@pytest.fixture
def pauses() -> Pauses:
    return Pauses()


@pytest.fixture
def gates() -> Gates:
    return Gates()


@pytest.fixture
async def channel(api: TelegramDouble, pauses: Pauses) -> AsyncIterator[TelegramChannel]:
    channel = TelegramChannel(settings_for(api), rate_limits=False, sleep=pauses)
    await channel.start()
    yield channel
    await channel.close()


@pytest.fixture
async def limited(api: TelegramDouble, gates: Gates) -> AsyncIterator[TelegramChannel]:
    channel = TelegramChannel(settings_for(api), limiters=gates)
    await channel.start()
    yield channel
    await channel.close()


def call(body: bytes | dict[str, Any], secret: str | None = SECRET) -> WebhookCall:
    """A webhook call as Telegram makes it, with ``secret`` in its header (none when None)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return WebhookCall("/webhooks/telegram", "https://beacon.example.org/webhooks/telegram", headers, raw)


async def one(channel: TelegramChannel, update: dict[str, Any]) -> Inbound:
    [message] = (await channel.receive(call(update))).messages
    return message


# --- receive -----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One webhook call and what receive() makes of it: 200 with at most one message, or a rejection."""

    label: str
    call: WebhookCall
    status: int = 200
    message: dict[str, Any] | None = None  # fields of the one Inbound expected; None: acknowledged, no message


def _edited(update: dict[str, Any]) -> dict[str, Any]:
    message = dict(update["message"], edit_date=update["message"]["date"])
    return {"update_id": update["update_id"], "edited_message": message}


STICKER = {
    "file_id": "CAACAgIAAxk",
    "file_unique_id": "AgADAgAD",
    "type": "regular",
    "width": 512,
    "height": 512,
    "is_animated": False,
    "is_video": False,
}
CHANNEL_POST = {"message_id": 1, "chat": {"id": -1001234, "type": "channel", "title": "News"}, "date": 1,
                "text": "/start"}
GROUP_MESSAGE = {**message_update(43, CHAT, "/start")["message"], "chat": {"id": -4242, "type": "group", "title": "F"}}
STICKER_MESSAGE = {**message_update(41, CHAT, "x")["message"], "text": None, "sticker": STICKER}

RECEIVE_CASES = [
    Case("missing secret", call(message_update(1, CHAT, "hi"), None), 403),
    Case("wrong secret", call(message_update(1, CHAT, "hi"), "wrong-secret"), 403),
    Case("prefix of the secret", call(message_update(1, CHAT, "hi"), SECRET[:-1]), 403),
    Case("not JSON", call(b"{not json"), 400),
    Case("not UTF-8", call(b"\xff\xfe\x00"), 400),
    Case("array", call(b"[]"), 400),
    Case("no update_id", call({"message": {"text": "hi"}}), 400),
    Case("string update_id", call({"update_id": "7"}), 400),
    Case("bad message", call({"update_id": 7, "message": {"text": "no chat, no date"}}), 400),
    Case("bad callback", call({"update_id": 7, "callback_query": {"id": "1"}}), 400),
    Case("start with payload", call(message_update(10, CHAT, "/start abc")),
         message={"text": "START", "payload": "abc"}),
    Case("start", call(message_update(11, CHAT, "/start")), message={"text": "START", "payload": None}),
    Case("command at bot", call(message_update(12, CHAT, "/mydata@beacon_bot")), message={"text": "MYDATA"}),
    Case("command case", call(message_update(13, CHAT, "/Lang  fr ")), message={"text": "LANG", "payload": "fr"}),
    Case("help in French", call(message_update(14, CHAT, "/help", language_code="fr")),
         message={"text": "HELP", "language_hint": "fr"}),
    Case("Arabic text", call(message_update(15, CHAT, "مرحبا، أحتاج مساعدة /start", language_code="ar")),
         message={"text": "مرحبا، أحتاج مساعدة /start", "language_hint": "ar", "payload": None}),
    Case("no language", call(message_update(16, CHAT, "yes", language_code=None)),
         message={"text": "yes", "language_hint": None, "callback_id": None}),
    Case("callback", call(callback_update(20, CHAT, "2", message_id=5)),
         message={"text": "2", "callback_id": f"{CHAT}20"}),
    Case("own contact", call(contact_update(30, CHAT, "491701234567", user_id=CHAT)),
         message={"text": "", "contact_phone": "+491701234567", "callback_id": None}),
    Case("own contact with +", call(contact_update(31, CHAT, "+44 7700 900123", user_id=CHAT)),
         message={"text": "", "contact_phone": "+447700900123"}),
    Case("someone else's contact", call(contact_update(32, CHAT, "33612345678", user_id=CHAT + 1)),
         message={"text": "", "contact_phone": None}),
    Case("contact without user", call(contact_update(33, CHAT, "33612345678", user_id=None)),
         message={"text": "", "contact_phone": None}),
    Case("edited message", call(_edited(message_update(40, CHAT, "/start")))),
    Case("sticker", call({"update_id": 41, "message": STICKER_MESSAGE})),
    Case("channel post", call({"update_id": 42, "channel_post": CHANNEL_POST})),
    Case("group message", call({"update_id": 43, "message": GROUP_MESSAGE})),
    Case("empty update", call({"update_id": 44})),
]


@pytest.mark.parametrize("case", RECEIVE_CASES, ids=[case.label for case in RECEIVE_CASES])
async def test_receive(channel: TelegramChannel, case: Case) -> None:
    before = datetime.now(UTC)
    try:
        received = await channel.receive(case.call)
    except WebhookRejected as exc:
        assert exc.status == case.status
        return
    assert case.status == 200
    assert received.statuses == [] and received.ack_body == ""  # never a Bot API method in the answer
    if case.message is None:
        assert received.messages == []
        return
    [message] = received.messages
    update_id = json.loads(case.call.body)["update_id"]
    assert (message.channel, message.address, message.provider_id) == ("telegram", str(CHAT), f"update:{update_id}")
    assert before <= message.received_at <= datetime.now(UTC)
    assert {key: getattr(message, key) for key in case.message} == case.message


async def test_acknowledge_answers_callback_queries_only(channel: TelegramChannel, api: TelegramDouble) -> None:
    await channel.acknowledge(await one(channel, message_update(50, CHAT, "hello")))
    assert api.calls_to("answerCallbackQuery") == []
    await channel.acknowledge(await one(channel, callback_update(51, CHAT, "1", message_id=3)))
    assert api.calls_to("answerCallbackQuery") == [{"callback_query_id": f"{CHAT}51"}]


async def test_acknowledge_swallows_errors_and_logs_codes_only(channel: TelegramChannel, api: TelegramDouble) -> None:
    inbound = await one(channel, callback_update(52, CHAT, "1", message_id=3))
    api.outage(True)
    with capture_logs() as logs:
        await channel.acknowledge(inbound)
    assert [entry["code"] for entry in logs] == ["network"]
    assert str(CHAT) not in repr(logs)


# --- send --------------------------------------------------------------------


def outbound(text: str = "Hello", chat: int = CHAT, outbox_id: int = 1, **kwargs: Any) -> Outbound:
    return Outbound(outbox_id=outbox_id, channel="telegram", address=str(chat), text=text, **kwargs)


@pytest.mark.parametrize(
    ("message", "markup"),
    [
        (outbound(), {"remove_keyboard": True}),
        (
            outbound(buttons=(Button("Yes", "1"), Button("No", "2"))),
            {"inline_keyboard": [[{"text": "Yes", "callback_data": "1"}, {"text": "No", "callback_data": "2"}]]},
        ),
        (
            outbound(buttons=tuple(Button(str(n), str(n)) for n in range(1, 6))),
            {
                "inline_keyboard": [
                    [{"text": str(n), "callback_data": str(n)} for n in (1, 2, 3)],
                    [{"text": str(n), "callback_data": str(n)} for n in (4, 5)],
                ]
            },
        ),
        (
            outbound(buttons=tuple(Button(f"A rather long label {n}", str(n)) for n in range(1, 4))),
            {
                "inline_keyboard": [
                    [{"text": f"A rather long label {n}", "callback_data": str(n)} for n in (1, 2)],
                    [{"text": "A rather long label 3", "callback_data": "3"}],
                ]
            },
        ),
    ],
    ids=["plain", "two-buttons", "five-short-buttons", "long-labels"],
)
async def test_send_keyboards(
    channel: TelegramChannel, api: TelegramDouble, message: Outbound, markup: dict[str, Any]
) -> None:
    sent = await channel.send(message)
    assert sent.provider_id == "1:1" and sent.status == "sent"  # outbox id and message id: no chat id in clear
    [params] = api.sent_to(CHAT)
    assert params["text"] == message.text
    assert params["reply_markup"] == markup


async def test_send_contact_button_keyboard(channel: TelegramChannel, api: TelegramDouble) -> None:
    await channel.send(outbound("Share your number?", contact_button="📱 Partager mon numéro",
                                buttons=(Button("Yes", "1"),)))
    markup = api.sent_to(CHAT)[0]["reply_markup"]
    assert markup == {"keyboard": [[{"text": "📱 Partager mon numéro", "request_contact": True}]],
                      "one_time_keyboard": True, "resize_keyboard": True}  # one keyboard: the contact one wins


async def test_long_text_is_split_with_buttons_on_the_last_part(channel: TelegramChannel, api: TelegramDouble) -> None:
    line = "Evacuation route " + "details " * 10 + "\n"  # 98 characters
    text = (line * 92)[:9000]
    sent = await channel.send(outbound(text, buttons=(Button("OK", "1"),)))
    parts = api.sent_to(CHAT)
    assert len(parts) == 3 and sent.provider_id == "1:3"
    assert all(len(p["text"]) <= 4096 for p in parts)
    assert all(p["text"].endswith("details") for p in parts[:2])  # cut at a line end
    assert " ".join(p["text"] for p in parts).split() == text.split()
    assert all("reply_markup" not in p for p in parts[:2])
    assert "inline_keyboard" in parts[2]["reply_markup"]


@pytest.mark.slow
async def test_rate_limited_continuation_part_is_retried_in_place(
    channel: TelegramChannel, api: TelegramDouble, pauses: Pauses
) -> None:
    api.rate_limit_after_next_delivery(1, 1)
    sent = await channel.send(outbound("a" * 4096 + "b" * 10, outbox_id=9))
    assert pauses.waited == [1.0]  # waited for retry_after before trying the part again
    assert [p["text"] for p in api.sent_to(CHAT)] == ["a" * 4096, "b" * 10]  # the first part went once
    assert len(api.calls_to("sendMessage")) == 3 and sent.provider_id == "9:2"


async def test_long_flood_pause_on_a_continuation_part_goes_back_to_the_outbox(
    channel: TelegramChannel, api: TelegramDouble, pauses: Pauses
) -> None:
    api.rate_limit_after_next_delivery(1, 600)
    with pytest.raises(SendError) as caught:
        await channel.send(outbound("a" * 4096 + "b" * 10))
    assert (caught.value.retry_after, caught.value.permanent) == (600.0, False)
    assert pauses.waited == []


async def test_rate_limited_first_part_goes_back_to_the_outbox(
    channel: TelegramChannel, api: TelegramDouble, pauses: Pauses
) -> None:
    api.rate_limit_next(1, 1)
    with pytest.raises(SendError) as caught:
        await channel.send(outbound("a" * 5000))
    assert caught.value.retry_after == 1.0 and pauses.waited == []  # the outbox retries it, no wait here
    assert api.sent_to(CHAT) == []


@pytest.mark.parametrize(
    ("text", "lengths"),
    [
        ("", [0]),
        ("a" * 4096, [4096]),
        ("a" * 4097, [4096, 1]),
        ("word " * 1000, [4094, 905]),
        ("x" * 3000 + "\n" + "y" * 2000, [3000, 2000]),
        ("😀" * 2049, [2048, 1]),  # two UTF-16 units each
    ],
    ids=["empty", "exact", "one-over", "words", "line", "astral"],
)
def test_split_text(text: str, lengths: list[int]) -> None:
    parts = split_text(text)
    assert [len(part) for part in parts] == lengths
    assert "".join(parts).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")


@pytest.mark.parametrize(
    ("setup", "message", "expected"),
    [
        (lambda api: api.rate_limit_next(1, 7), outbound(), {"permanent": False, "retry_after": 7.0, "code": "429"}),
        (lambda api: api.block(CHAT), outbound(), {"permanent": True, "unreachable": True, "code": "403"}),
        (lambda api: api.unknown_chat(CHAT), outbound(), {"permanent": True, "unreachable": True, "code": "400"}),
        (lambda api: None, outbound(""), {"permanent": True, "unreachable": False, "code": "400"}),
        (lambda api: api.outage(True), outbound(), {"permanent": False, "unreachable": False, "code": "network"}),
        (
            lambda api: None,
            Outbound(1, "telegram", "@someone", "Hi"),
            {"permanent": True, "unreachable": True, "code": "400"},
        ),
    ],
    ids=["rate-limited", "blocked", "chat-not-found", "empty-text", "outage", "bad-address"],
)
async def test_send_errors(
    channel: TelegramChannel,
    api: TelegramDouble,
    setup: Callable[[TelegramDouble], None],
    message: Outbound,
    expected: dict[str, Any],
) -> None:
    setup(api)
    with capture_logs() as logs, pytest.raises(SendError) as caught:
        await channel.send(message)
    assert {key: getattr(caught.value, key) for key in expected} == expected
    assert str(CHAT) not in str(caught.value) and str(CHAT) not in repr(logs)
    assert not message.text or message.text not in repr(logs)


async def test_each_chat_has_its_own_limit_under_the_overall_one(
    limited: TelegramChannel, api: TelegramDouble, gates: Gates
) -> None:
    assert gates.rates == [30.0]  # the overall limit, from the settings
    gates.shut = True
    burst = asyncio.gather(*(limited.send(outbound(f"Alert {n}", outbox_id=n)) for n in range(3)))
    await gates.until(lambda: len(gates.made) == 2 and gates.made[1].waiting == 1)
    chat_gate = gates.made[1]
    assert chat_gate.rate == 1.0 and api.sent_to(CHAT) == []  # one message a second per chat
    # other chats are not held up by it
    gates.shut = False
    await asyncio.gather(*(limited.send(outbound("Alert", chat=CHAT + n)) for n in range(1, 6)))
    assert all(api.sent_to(CHAT + n) for n in range(1, 6)) and api.sent_to(CHAT) == []
    assert gates.rates == [30.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    chat_gate.open()
    assert [s.provider_id for s in await burst] == [f"{n}:{n + 1}" for n in range(3)]
    assert [p["text"] for p in api.sent_to(CHAT)] == ["Alert 0", "Alert 1", "Alert 2"]  # in order, one at a time
    assert chat_gate.passed == 3 and gates.made[0].passed == 8  # every send passed both limits


async def test_no_limits_when_rate_limits_are_off(api: TelegramDouble, gates: Gates) -> None:
    channel = TelegramChannel(settings_for(api), rate_limits=False, limiters=gates)
    await channel.start()
    await channel.send(outbound())
    await channel.close()
    assert all(gate.passed == 0 for gate in gates.made) and len(api.sent_to(CHAT)) == 1


@pytest.mark.slow
async def test_concurrent_sends_to_different_chats(channel: TelegramChannel, api: TelegramDouble) -> None:
    chats = [CHAT + n for n in range(100)]
    sent = await asyncio.gather(*(channel.send(outbound(f"Check-in {c}", chat=c, outbox_id=c)) for c in chats))
    assert sorted(s.provider_id for s in sent) == sorted(f"{c}:1" for c in chats)
    assert all([p["text"] for p in api.sent_to(c)] == [f"Check-in {c}"] for c in chats)


async def test_wrong_token_fails_at_start(api: TelegramDouble) -> None:
    channel = TelegramChannel(settings_for(api, token="123456789:WRONG"))
    with pytest.raises(InvalidToken) as caught:
        await channel.start()
    assert "WRONG" not in str(caught.value)
    with pytest.raises(RuntimeError):
        await channel.send(outbound())
    await channel.close()


# --- CLI helpers -------------------------------------------------------------


@pytest.mark.slow
async def test_set_and_delete_webhook(api: TelegramDouble) -> None:
    await set_webhook(settings_for(api), "https://beacon.example.org/")
    assert api.calls_to("setWebhook") == [
        {
            "url": "https://beacon.example.org/webhooks/telegram",
            "secret_token": SECRET,
            "allowed_updates": ["message", "callback_query"],
            "drop_pending_updates": False,
        }
    ]
    async with Bot(TOKEN, base_url=api.base_url) as bot:
        info = await bot.get_webhook_info()
    assert info.url == "https://beacon.example.org/webhooks/telegram"
    assert info.allowed_updates == ("message", "callback_query")
    await delete_webhook(settings_for(api))
    assert len(api.calls_to("deleteWebhook")) == 1 and api.webhook["url"] == ""


async def test_set_commands_per_language(api: TelegramDouble) -> None:
    await set_commands(settings_for(api), LANGUAGES, gettext_for)
    assert set(api.commands) == {None, *LANGUAGES}
    names = [name for name, _ in COMMANDS]
    assert names == ["start", "help", "update", "mydata", "delete", "lang", "stop"]
    for language, commands in api.commands.items():
        assert [c["command"] for c in commands] == names
        expected = [gettext_for(language or "en", description) for _, description in COMMANDS]
        assert [c["description"] for c in commands] == expected
