"""TelegramChannel with the real python-telegram-bot against the local Bot API double."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs
from telegram import Bot
from telegram.error import InvalidToken

from beacon.config import TelegramSettings
from bot.i18n import LANGUAGES, gettext_for
from channels.base import Button, Inbound, Outbound, Received, SendError, WebhookRejected
from channels.telegram import (
    COMMANDS,
    MAX_BODY,
    TelegramChannel,
    delete_webhook,
    set_commands,
    set_webhook,
    split_text,
)
from tests.doubles.telegram_api import TelegramDouble, callback_update, contact_update, message_update

TOKEN = "123456789:TEST-token"
SECRET = "hook-secret_0123456789"
CHAT = 4242001

# PTB 22 itself warns, while building RetryAfter, that retry_after will become a timedelta.
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")

Post = Callable[..., Awaitable[tuple[int, Received | None]]]


def settings_for(api: TelegramDouble, token: str = TOKEN) -> TelegramSettings:
    return TelegramSettings(bot_token=token, webhook_secret=SECRET, api_base_url=api.base_url, rate_per_second=30.0)


@pytest.fixture
async def api() -> AsyncIterator[TelegramDouble]:
    double = TelegramDouble(TOKEN)
    await double.start()
    yield double
    await double.close()


async def _started(api: TelegramDouble, rate_limits: bool) -> TelegramChannel:
    channel = TelegramChannel(settings_for(api), rate_limits=rate_limits)
    await channel.start()
    return channel


@pytest.fixture
async def channel(api: TelegramDouble) -> AsyncIterator[TelegramChannel]:
    channel = await _started(api, rate_limits=False)
    yield channel
    await channel.close()


@pytest.fixture
async def limited(api: TelegramDouble) -> AsyncIterator[TelegramChannel]:
    channel = await _started(api, rate_limits=True)
    yield channel
    await channel.close()


@pytest.fixture
async def post(channel: TelegramChannel) -> AsyncIterator[Post]:
    """POST a body to a tiny app that hands the request to channel.receive()."""
    results: list[Received] = []

    async def handle(request: web.Request) -> web.Response:
        try:
            received = await channel.receive(request)
        except WebhookRejected as exc:
            return web.Response(status=exc.status, text=exc.reason)
        results.append(received)
        return web.Response(text=received.ack_body, content_type=received.ack_content_type)

    app = web.Application(client_max_size=4 * MAX_BODY)  # our own limit must do the work
    app.router.add_post("/webhooks/telegram", handle)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:

        async def send(body: bytes | dict[str, Any], secret: str | None = SECRET) -> tuple[int, Received | None]:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"}
            if secret is not None:
                headers["X-Telegram-Bot-Api-Secret-Token"] = secret
            results.clear()
            response = await client.post("/webhooks/telegram", data=io.BytesIO(raw), headers=headers)
            assert await response.text() == "" or response.status != 200  # never a method in the body
            return response.status, results[0] if results else None

        yield send


async def one(post: Post, update: dict[str, Any]) -> Inbound:
    status, received = await post(update)
    assert status == 200 and received is not None and len(received.messages) == 1
    return received.messages[0]


# --- receive -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "secret", "status"),
    [
        (message_update(1, CHAT, "hi"), None, 403),
        (message_update(1, CHAT, "hi"), "wrong-secret", 403),
        (message_update(1, CHAT, "hi"), SECRET[:-1], 403),
        (b"x" * (MAX_BODY + 1), "wrong-secret", 403),
        (b"{" + b" " * MAX_BODY + b"}", SECRET, 413),
        (b"{not json", SECRET, 400),
        (b"\xff\xfe\x00", SECRET, 400),
        (b"[]", SECRET, 400),
        ({"message": {"text": "hi"}}, SECRET, 400),
        ({"update_id": "7"}, SECRET, 400),
        ({"update_id": 7, "message": {"text": "no chat, no date"}}, SECRET, 400),
        ({"update_id": 7, "callback_query": {"id": "1"}}, SECRET, 400),
    ],
    ids=[
        "missing-secret", "wrong-secret", "prefix-secret", "oversize-wrong-secret", "oversize",
        "not-json", "not-utf8", "array", "no-update-id", "string-update-id", "bad-message", "bad-callback",
    ],
)
async def test_rejected_webhooks(post: Post, body: bytes | dict[str, Any], secret: str | None, status: int) -> None:
    assert (await post(body, secret))[0] == status


OWN_CONTACT = contact_update(30, CHAT, "491701234567", user_id=CHAT)
PLUS_CONTACT = contact_update(31, CHAT, "+44 7700 900123", user_id=CHAT)
OTHER_CONTACT = contact_update(32, CHAT, "33612345678", user_id=CHAT + 1)
NO_USER_CONTACT = contact_update(33, CHAT, "33612345678", user_id=None)


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        (message_update(10, CHAT, "/start abc"), {"text": "START", "payload": "abc"}),
        (message_update(11, CHAT, "/start"), {"text": "START", "payload": None}),
        (message_update(12, CHAT, "/mydata@beacon_bot"), {"text": "MYDATA", "payload": None}),
        (message_update(13, CHAT, "/Lang  fr "), {"text": "LANG", "payload": "fr"}),
        (message_update(14, CHAT, "/help", language_code="fr"), {"text": "HELP", "language_hint": "fr"}),
        (
            message_update(15, CHAT, "مرحبا، أحتاج مساعدة /start", language_code="ar"),
            {"text": "مرحبا، أحتاج مساعدة /start", "language_hint": "ar", "payload": None},
        ),
        (message_update(16, CHAT, "yes", language_code=None), {"text": "yes", "language_hint": None}),
        (callback_update(20, CHAT, "2", message_id=5), {"text": "2", "callback_id": f"{CHAT}20"}),
        (OWN_CONTACT, {"text": "", "contact_phone": "+491701234567"}),
        (PLUS_CONTACT, {"text": "", "contact_phone": "+447700900123"}),
        (OTHER_CONTACT, {"text": "", "contact_phone": None}),
        (NO_USER_CONTACT, {"text": "", "contact_phone": None}),
    ],
    ids=[
        "start-payload", "start", "command-at-bot", "command-case", "help-fr", "arabic-text", "no-language",
        "callback", "own-contact", "own-contact-plus", "other-contact", "contact-without-user",
    ],
)
async def test_updates_become_inbound(post: Post, update: dict[str, Any], expected: dict[str, Any]) -> None:
    inbound = await one(post, update)
    assert inbound.channel == "telegram"
    assert inbound.address == str(CHAT)
    assert inbound.provider_id == f"update:{update['update_id']}"
    assert inbound.received_at.tzinfo is not None
    assert {key: getattr(inbound, key) for key in expected} == expected
    if "callback_id" not in expected:
        assert inbound.callback_id is None


def _edited(update: dict[str, Any]) -> dict[str, Any]:
    message = dict(update["message"], edit_date=int(time.time()))
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


@pytest.mark.parametrize(
    "update",
    [
        _edited(message_update(40, CHAT, "/start")),
        {"update_id": 41, "message": {**message_update(41, CHAT, "x")["message"], "text": None, "sticker": STICKER}},
        {
            "update_id": 42,
            "channel_post": {
                "message_id": 1,
                "chat": {"id": -1001234, "type": "channel", "title": "News"},
                "date": int(time.time()),
                "text": "/start",
            },
        },
        {
            "update_id": 43,
            "message": {
                **message_update(43, CHAT, "/start")["message"],
                "chat": {"id": -4242, "type": "group", "title": "Family"},
            },
        },
        {"update_id": 44},
    ],
    ids=["edited-message", "sticker", "channel-post", "group-message", "empty-update"],
)
async def test_unhandled_updates_are_acknowledged_without_messages(post: Post, update: dict[str, Any]) -> None:
    status, received = await post(update)
    assert status == 200 and received is not None
    assert received.messages == [] and received.ack_body == ""


async def test_acknowledge_answers_callback_queries_only(
    post: Post, channel: TelegramChannel, api: TelegramDouble
) -> None:
    await channel.acknowledge(await one(post, message_update(50, CHAT, "hello")))
    assert api.calls_to("answerCallbackQuery") == []
    await channel.acknowledge(await one(post, callback_update(51, CHAT, "1", message_id=3)))
    assert api.calls_to("answerCallbackQuery") == [{"callback_query_id": f"{CHAT}51"}]


async def test_acknowledge_swallows_errors_and_logs_codes_only(
    post: Post, channel: TelegramChannel, api: TelegramDouble
) -> None:
    inbound = await one(post, callback_update(52, CHAT, "1", message_id=3))
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


async def test_send_request_contact_keyboard(channel: TelegramChannel, api: TelegramDouble) -> None:
    await channel.send(outbound("Share your number?", request_contact=True))
    markup = api.sent_to(CHAT)[0]["reply_markup"]
    [[button]] = markup["keyboard"]
    assert button["request_contact"] is True and button["text"]
    assert markup["one_time_keyboard"] is True


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
    channel: TelegramChannel, api: TelegramDouble
) -> None:
    api.rate_limit_after_next_delivery(1, 1)
    started = time.monotonic()
    sent = await channel.send(outbound("a" * 4096 + "b" * 10, outbox_id=9))
    assert time.monotonic() - started >= 0.95  # waited for retry_after
    assert [p["text"] for p in api.sent_to(CHAT)] == ["a" * 4096, "b" * 10]  # the first part went once
    assert len(api.calls_to("sendMessage")) == 3 and sent.provider_id == "9:2"


async def test_long_flood_pause_on_a_continuation_part_goes_back_to_the_outbox(
    channel: TelegramChannel, api: TelegramDouble
) -> None:
    api.rate_limit_after_next_delivery(1, 600)
    with pytest.raises(SendError) as caught:
        await asyncio.wait_for(channel.send(outbound("a" * 4096 + "b" * 10)), timeout=2)
    assert (caught.value.retry_after, caught.value.permanent) == (600.0, False)


async def test_rate_limited_first_part_goes_back_to_the_outbox(channel: TelegramChannel, api: TelegramDouble) -> None:
    api.rate_limit_next(1, 1)
    started = time.monotonic()
    with pytest.raises(SendError) as caught:
        await channel.send(outbound("a" * 5000))
    assert caught.value.retry_after == 1.0 and time.monotonic() - started < 0.5
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


@pytest.mark.slow
async def test_per_chat_limiter_spaces_a_burst(limited: TelegramChannel, api: TelegramDouble) -> None:
    started = time.monotonic()
    burst = asyncio.gather(*(limited.send(outbound(f"Alert {n}", outbox_id=n)) for n in range(3)))
    await api.wait_for(lambda: len(api.sent_to(CHAT)) == 3, timeout=5)
    assert time.monotonic() - started >= 1.5
    assert [s.provider_id for s in await burst] == [f"{n}:{n + 1}" for n in range(3)]
    assert [p["text"] for p in api.sent_to(CHAT)] == ["Alert 0", "Alert 1", "Alert 2"]
    times = [t for (method, _), t in zip(api.calls, api.call_times, strict=True) if method == "sendMessage"]
    assert all(later - earlier >= 0.8 for earlier, later in zip(times, times[1:], strict=False))
    # other chats are not held up by it
    started = time.monotonic()
    await asyncio.gather(*(limited.send(outbound("Alert", chat=CHAT + n)) for n in range(1, 6)))
    assert time.monotonic() - started < 3.0  # held behind the busy chat, five sends would take about 5 s


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
    await set_commands(settings_for(api))
    assert set(api.commands) == {None, *LANGUAGES}
    names = [name for name, _ in COMMANDS]
    assert names == ["start", "help", "update", "mydata", "delete", "lang", "stop"]
    for language, commands in api.commands.items():
        assert [c["command"] for c in commands] == names
        expected = [gettext_for(language or "en", description) for _, description in COMMANDS]
        assert [c["description"] for c in commands] == expected
