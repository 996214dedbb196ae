"""Telegram: Bot API webhooks in, ``sendMessage`` out.

python-telegram-bot is used as a library only: a :class:`telegram.Bot` for the
API calls and :class:`telegram.Update` to parse webhooks; Beacon's own aiohttp
app serves the webhook. Log lines and error messages carry update ids, outbox
ids and error codes, never chat ids, names, phone numbers or texts.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import re
import warnings
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import structlog
from telegram import (
    Bot,
    BotCommand,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
    User,
    WebhookInfo,
)
from telegram.constants import ChatType
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.warnings import PTBDeprecationWarning

from channels.base import Inbound, Outbound, Received, SendError, Sent, StatusUpdate, WebhookCall, WebhookRejected
from channels.limits import Limiter, Limiters, rate_limiter
from channels.settings import SettingsError, TelegramSettings
from domain.vocabulary import ChannelKind, ProviderName

log = structlog.get_logger(__name__)

WEBHOOK_PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1024 * 1024
MAX_TEXT = 4096  # Telegram counts UTF-16 code units; counting them is never too generous
ALLOWED_UPDATES = ("message", "callback_query")
PART_RETRIES = 3  # attempts at a continuation part of a split message that Telegram rate-limits
PART_RETRY_MAX_WAIT = 30.0  # seconds; a longer flood-control pause goes back to the outbox
CHAT_STATES = 10_000  # per-chat limiters kept, least recently used dropped first


def N_(message: str) -> str:
    """Mark a text for the bot's catalog (``make catalogs`` extracts it); it is translated where it is used."""
    return message


# The bot's menu; descriptions are catalog entries so each language gets its own.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", N_("Start or resume messages")),
    ("help", N_("How Beacon works")),
    ("update", N_("Change your details")),
    ("mydata", N_("See the data we hold about you")),
    ("delete", N_("Erase your data")),
    ("lang", N_("Change your language")),
    ("stop", N_("Stop all messages")),
)

_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@[A-Za-z0-9_]+)?")

ReplyMarkup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove
Translate = Callable[[str, str], str]  # (language, catalog text in English) -> the text in that language


@dataclass
class _ChatState:
    """Per-chat send state: 1 message a second, and one send at a time so split parts stay in order."""

    limiter: Limiter
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class TelegramChannel:
    """The Telegram Bot API as a Beacon channel."""

    name: ProviderName = ProviderName.TELEGRAM
    channels: frozenset[ChannelKind] = frozenset({ChannelKind.TELEGRAM})
    webhook_paths: tuple[str, ...] = (WEBHOOK_PATH,)
    max_body = MAX_BODY

    def __init__(
        self,
        settings: TelegramSettings,
        *,
        rate_limits: bool = True,
        limiters: Limiters = rate_limiter,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._rate_limits = rate_limits
        self._make_limiter = limiters
        self._sleep = sleep  # waits out a flood-control pause between the parts of a split message
        # Telegram's overall limit is per bot: the key is the bot's id (the token's public part, never its secret).
        self._overall = limiters(settings.rate_per_second, f"telegram:{settings.bot_token.partition(':')[0]}")
        self._chats: OrderedDict[int, _ChatState] = OrderedDict()
        self._bot: Bot | None = None

    async def start(self) -> None:
        """Create the Bot and check the token with getMe."""
        self._bot = await _open_bot(self._settings)

    @property
    def username(self) -> str | None:
        """The bot's username (known once started: getMe), for t.me deep links."""
        return self._bot.username if self._bot is not None else None

    async def close(self) -> None:
        """Shut the Bot's HTTP client down."""
        if self._bot is not None:
            bot, self._bot = self._bot, None
            await bot.shutdown()

    async def receive(self, call: WebhookCall) -> Received:
        """Check the secret token, parse one update; unhandled kinds give no messages."""
        secret = call.headers.get(SECRET_HEADER, "").encode()
        expected = self._settings.webhook_secret.encode()
        if not expected or not hmac.compare_digest(secret, expected):
            raise WebhookRejected(403, "bad or missing secret token")
        try:
            data = json.loads(call.body)
        except ValueError:
            raise WebhookRejected(400, "body is not JSON") from None
        if not isinstance(data, dict) or type(data.get("update_id")) is not int:
            raise WebhookRejected(400, "no update_id")
        try:
            update = Update.de_json(data, self._bot)
            # de_json checks no types: a list for a text or a string for a chat id only fails here.
            inbound = parse_update(update)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise WebhookRejected(400, f"malformed update {data['update_id']}") from None
        if inbound is not None and not _well_typed(inbound):
            raise WebhookRejected(400, f"malformed update {data['update_id']}")
        if inbound is None:
            log.debug("telegram.update_ignored", update_id=update.update_id)
            return Received()
        return Received(messages=[inbound])

    async def acknowledge(self, message: Inbound) -> None:
        """Answer a callback query so the button stops spinning; failures are only logged."""
        if not message.callback_id:
            return
        try:
            await self._require_bot().answer_callback_query(message.callback_id)
        except TelegramError as exc:
            log.warning("telegram.callback_answer_failed", provider_id=message.provider_id, code=error_code(exc))

    async def send(self, message: Outbound) -> Sent:
        """Send one message, split into several when it is too long; raise SendError on failure."""
        bot = self._require_bot()
        try:
            chat_id = int(message.address)
        except ValueError:
            raise SendError("400", "address is not a chat id", permanent=True, unreachable=True) from None
        parts = split_text(message.text)
        state = self._chat_state(chat_id)
        async with state.lock:
            for index, part in enumerate(parts):
                markup = reply_markup(message) if index == len(parts) - 1 else None
                for attempt in itertools.count(1):
                    if self._rate_limits:
                        await state.limiter.acquire()
                        await self._overall.acquire()
                    try:
                        sent = await bot.send_message(chat_id, part, reply_markup=markup)
                        break
                    except TelegramError as exc:
                        error = send_error(exc)
                        log.info("telegram.send_failed", outbox_id=message.outbox_id, code=error.code, part=index)
                        # Once a part has left, retrying the whole message from the outbox would repeat it:
                        # wait out a short flood-control pause here instead.
                        wait = error.retry_after
                        if index == 0 or wait is None or wait > PART_RETRY_MAX_WAIT or attempt >= PART_RETRIES:
                            raise error from exc
                    await self._sleep(wait)
        # outbox.provider_id is stored in clear: the outbox row and Telegram's message id, never the chat id
        return Sent(provider_id=f"{message.outbox_id}:{sent.message_id}", status="sent")

    def fallback_for(self, update: StatusUpdate, original: Outbound) -> Outbound | None:
        """Telegram reports no delivery failures to fall back from."""
        return None

    def _require_bot(self) -> Bot:
        if self._bot is None:
            raise RuntimeError("TelegramChannel.start() was not called")
        return self._bot

    def _chat_state(self, chat_id: int) -> _ChatState:
        state = self._chats.get(chat_id)
        if state is None:
            state = self._chats[chat_id] = _ChatState(self._make_limiter(1.0, None))
            if len(self._chats) > CHAT_STATES:
                self._chats.popitem(last=False)
        else:
            self._chats.move_to_end(chat_id)
        return state


# --- parsing ----------------------------------------------------------------


def parse_update(update: Update) -> Inbound | None:
    """The Inbound of one update, or None for kinds Beacon does not handle (edits, stickers, groups ...)."""
    if update.callback_query is not None:
        return _from_callback(update.update_id, update.callback_query)
    if update.message is not None:
        return _from_message(update.update_id, update.message)
    return None


def _well_typed(inbound: Inbound) -> bool:
    """Whether an update's fields had the types the Bot API gives them (a decimal chat id, strings)."""
    optional = (inbound.language_hint, inbound.contact_phone, inbound.callback_id, inbound.payload)
    return (isinstance(inbound.text, str) and re.fullmatch(r"-?[0-9]+", inbound.address) is not None
            and all(value is None or isinstance(value, str) for value in optional))


def _inbound(
    update_id: int,
    chat_id: int,
    user: User,
    text: str,
    *,
    contact_phone: str | None = None,
    callback_id: str | None = None,
    payload: str | None = None,
) -> Inbound:
    return Inbound(
        channel=ChannelKind.TELEGRAM,
        address=str(chat_id),
        text=text,
        provider_id=f"update:{update_id}",
        received_at=datetime.now(UTC),
        language_hint=user.language_code,
        contact_phone=contact_phone,
        callback_id=callback_id,
        payload=payload,
    )


def _from_message(update_id: int, message: Message) -> Inbound | None:
    user = message.from_user
    # Beacon talks to people one to one; a group chat id must never become someone's address.
    if user is None or message.chat.type != ChatType.PRIVATE:
        return None
    if message.contact is not None:
        own = message.contact.user_id == user.id
        phone = e164(message.contact.phone_number) if own else None
        return _inbound(update_id, message.chat.id, user, "", contact_phone=phone)
    if message.text is None:
        return None
    words = message.text.split(maxsplit=1)
    match = _COMMAND.fullmatch(words[0]) if words else None
    if match is None:
        return _inbound(update_id, message.chat.id, user, message.text)
    payload = words[1].strip() if len(words) > 1 else None
    return _inbound(update_id, message.chat.id, user, match.group(1).upper(), payload=payload or None)


def _from_callback(update_id: int, query: CallbackQuery) -> Inbound | None:
    if query.data is None:
        return None
    chat = query.message.chat if query.message is not None else None
    if chat is not None and chat.type != ChatType.PRIVATE:
        return None
    chat_id = chat.id if chat is not None else query.from_user.id  # a private chat's id is the user's
    return _inbound(update_id, chat_id, query.from_user, query.data, callback_id=query.id)


def e164(phone: str) -> str | None:
    """A Telegram contact's phone number ("491701234567", "+49 170 ...") as E.164."""
    digits = re.sub(r"\D", "", phone)
    return f"+{digits}" if digits else None


# --- sending ----------------------------------------------------------------


def _utf16_units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _fit(text: str, limit: int) -> int:
    """How many characters of ``text`` fit in ``limit`` UTF-16 code units."""
    units = 0
    for index, char in enumerate(text):
        units += _utf16_units(char)
        if units > limit:
            return index
    return len(text)


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Cut a text into parts of at most ``limit`` units: at a line break, else a space, else anywhere."""
    parts: list[str] = []
    rest = text
    while _fit(rest, limit) < len(rest):
        window = rest[: _fit(rest, limit)]
        newline, space = window.rfind("\n"), window.rfind(" ")
        if newline >= len(window) // 2:
            cut = newline
        elif max(newline, space) > 0:
            cut = max(newline, space)
        else:
            cut = len(window)
        part, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        if part:
            parts.append(part)
    if rest or not parts:
        parts.append(rest)
    return parts


def _rows(buttons: Sequence[InlineKeyboardButton]) -> list[list[InlineKeyboardButton]]:
    width = 3 if all(len(button.text) <= 12 for button in buttons) else 2
    return [list(buttons[i : i + width]) for i in range(0, len(buttons), width)]


def reply_markup(message: Outbound) -> ReplyMarkup:
    """The keyboard of a message's last part.

    A contact request wins over inline buttons (a message has one keyboard);
    a plain message removes a contact keyboard left open by an earlier one.
    """
    if message.contact_button:
        button = KeyboardButton(message.contact_button, request_contact=True)
        return ReplyKeyboardMarkup([[button]], one_time_keyboard=True, resize_keyboard=True)
    if message.buttons:
        buttons = [InlineKeyboardButton(b.label, callback_data=b.data) for b in message.buttons]
        return InlineKeyboardMarkup(_rows(buttons))
    return ReplyKeyboardRemove()


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def error_code(exc: TelegramError) -> str:
    """A short code for a Telegram error: the HTTP status where there is one."""
    codes: tuple[tuple[type[TelegramError], str], ...] = (
        (RetryAfter, "429"),
        (Forbidden, "403"),
        (InvalidToken, "401"),
        (BadRequest, "400"),
        (ChatMigrated, "chat_migrated"),
        (TimedOut, "timeout"),
        (NetworkError, "network"),
    )
    return next((code for kind, code in codes if isinstance(exc, kind)), "telegram")


def send_error(exc: TelegramError) -> SendError:
    """Map a python-telegram-bot error to a SendError (reasons are Telegram's fixed descriptions)."""
    code = error_code(exc)
    if isinstance(exc, RetryAfter):
        with warnings.catch_warnings():  # PTB 22 warns that retry_after becomes a timedelta
            warnings.simplefilter("ignore", PTBDeprecationWarning)
            retry_after = _seconds(exc.retry_after)
        return SendError(code, "flood control", permanent=False, retry_after=retry_after)
    if isinstance(exc, Forbidden | ChatMigrated):
        return SendError(code, exc.message, permanent=True, unreachable=True)
    if isinstance(exc, BadRequest):
        unreachable = "chat not found" in exc.message.lower()
        return SendError(code, exc.message, permanent=True, unreachable=unreachable)
    return SendError(code, exc.message, permanent=False)


# --- set-up commands for the CLI ---------------------------------------------


async def _open_bot(settings: TelegramSettings) -> Bot:
    """An initialised Bot (getMe done); nothing left open and no token in the error when it fails."""
    _quiet_library_loggers()
    bot = Bot(settings.bot_token, base_url=settings.api_base_url)
    try:
        await bot.initialize()
    except InvalidToken:  # PTB's message quotes the token
        await bot.shutdown()
        raise InvalidToken("the Bot API rejected the bot token") from None
    except BaseException:
        await bot.shutdown()
        raise
    return bot


@asynccontextmanager
async def _bot_session(settings: TelegramSettings) -> AsyncIterator[Bot]:
    bot = await _open_bot(settings)
    try:
        yield bot
    finally:
        await bot.shutdown()


def _quiet_library_loggers() -> None:
    """PTB logs request parameters (chat ids, texts) at DEBUG; httpx logs URLs holding the token at INFO."""
    for name, level in (("telegram", logging.INFO), ("httpx", logging.WARNING), ("httpcore", logging.INFO)):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < level:
            logger.setLevel(level)


_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def webhook_url(public_url: str) -> str:
    """Where Telegram posts updates; SettingsError unless it is HTTPS (plain HTTP only for a local Bot API server)."""
    parts = urlsplit(public_url)
    if parts.scheme != "https" and parts.hostname not in _LOOPBACK:
        raise SettingsError(f"BEACON_PUBLIC_URL must be an https URL for Telegram webhooks, got {public_url!r}")
    return public_url.rstrip("/") + WEBHOOK_PATH


def check_secret(secret: str) -> None:
    """SettingsError unless Telegram accepts ``secret`` as a webhook secret_token."""
    if not _SECRET_TOKEN.fullmatch(secret):
        raise SettingsError("TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -")


async def set_webhook(settings: TelegramSettings, public_url: str) -> WebhookInfo:
    """Point Telegram at ``public_url``/webhooks/telegram with our secret token; what getWebhookInfo then says."""
    url = webhook_url(public_url)
    check_secret(settings.webhook_secret)
    async with _bot_session(settings) as bot:
        await bot.set_webhook(
            url=url,
            secret_token=settings.webhook_secret,
            allowed_updates=list(ALLOWED_UPDATES),
            drop_pending_updates=False,
        )
        return await bot.get_webhook_info()


async def delete_webhook(settings: TelegramSettings) -> None:
    """Stop webhook delivery (pending updates are kept)."""
    async with _bot_session(settings) as bot:
        await bot.delete_webhook(drop_pending_updates=False)


async def set_commands(settings: TelegramSettings, languages: Iterable[str], translate: Translate) -> None:
    """Set the command menu once per language, described through ``translate``, plus the English default."""
    async with _bot_session(settings) as bot:
        await bot.set_my_commands([BotCommand(command, description) for command, description in COMMANDS])
        for language in languages:
            menu = [BotCommand(command, translate(language, description)) for command, description in COMMANDS]
            await bot.set_my_commands(menu, language_code=language)
