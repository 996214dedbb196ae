"""A local stand-in for the Telegram Bot API, and realistic update bodies.

:class:`TelegramDouble` serves ``/bot<token>/<method>`` on 127.0.0.1 with the
answers python-telegram-bot expects (``{"ok": true, "result": ...}``), records
every call, and can be told to rate-limit, to act blocked by a chat, or to fail.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from aiohttp import web

JSON = dict[str, Any]

# Parameters that are text even when they look like JSON ("123", "true").
_TEXT_PARAMS = frozenset(
    {"text", "caption", "url", "secret_token", "callback_query_id", "language_code", "parse_mode", "description"}
)
_PATH = re.compile(r"/bot([^/]+)/([A-Za-z]+)")
_MAX_TEXT = 4096


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _user(user_id: int, language_code: str | None = "en") -> JSON:
    user: JSON = {"id": user_id, "is_bot": False, "first_name": "Test"}
    if language_code:
        user["language_code"] = language_code
    return user


def _private_chat(chat_id: int) -> JSON:
    return {"id": chat_id, "type": "private", "first_name": "Test"}


def _error(status: int, description: str, **parameters: Any) -> web.Response:
    body: JSON = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


class TelegramDouble:
    """A Bot API server for one bot token; ``base_url`` goes where ``https://api.telegram.org/bot`` would."""

    def __init__(self, token: str = "123456789:TEST-token") -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 123456789
        self.calls: list[tuple[str, JSON]] = []  # every authorised call, failed ones included
        self.call_times: list[float] = []  # time.monotonic() of each entry in ``calls``
        self.delivered: list[tuple[str, JSON]] = []  # calls that were answered with ok
        self.webhook: JSON = {"url": ""}
        self.commands: dict[str | None, list[JSON]] = {}  # language_code -> commands
        self._rate_limited = 0
        self._retry_after = 0
        self._limit_after_delivery: tuple[int, int] | None = None  # (n, retry_after) once a message is delivered
        self._blocked: set[int] = set()
        self._unknown: set[int] = set()
        self._outage = False
        self._message_ids: defaultdict[int, itertools.count[int]] = defaultdict(lambda: itertools.count(1))
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    @property
    def base_url(self) -> str:
        """The Bot API base URL, token not included (PTB appends it)."""
        return f"http://127.0.0.1:{self.port}/bot"

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- controls ------------------------------------------------------------

    def rate_limit_next(self, n: int, retry_after: int) -> None:
        """Answer the next ``n`` calls (getMe excepted) with 429 and ``retry_after``."""
        self._rate_limited, self._retry_after = n, retry_after

    def rate_limit_after_next_delivery(self, n: int, retry_after: int) -> None:
        """Deliver the next sendMessage, then answer the ``n`` calls after it with 429 and ``retry_after``."""
        self._limit_after_delivery = (n, retry_after)

    def block(self, chat_id: int) -> None:
        """Act as if this chat's user blocked the bot."""
        self._blocked.add(chat_id)

    def unknown_chat(self, chat_id: int) -> None:
        """Act as if this chat does not exist."""
        self._unknown.add(chat_id)

    def outage(self, on: bool) -> None:
        """Answer every call with 502 while ``on``."""
        self._outage = on

    # --- inspection ----------------------------------------------------------

    def sent_to(self, chat_id: int) -> list[JSON]:
        """Parameters of the sendMessage calls delivered to one chat, in order."""
        return [p for m, p in self.delivered if m == "sendMessage" and p.get("chat_id") == chat_id]

    def calls_to(self, method: str) -> list[JSON]:
        """Parameters of every call of one method."""
        return [p for m, p in self.calls if m.lower() == method.lower()]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until ``predicate()`` holds after some call; AssertionError after ``timeout`` seconds."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            except TimeoutError:
                raise AssertionError(f"condition not met within {timeout}s") from None

    # --- the API ---------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        match = _PATH.fullmatch(request.path)
        if match is None:
            return _error(404, "Not Found")
        if match.group(1) != self.token:
            return _error(401, "Unauthorized")
        method = match.group(2)
        params = await _params(request)
        self.calls.append((method, params))
        self.call_times.append(time.monotonic())
        response = self._answer(method, params)
        if response.status == 200:
            self.delivered.append((method, params))
        async with self._changed:
            self._changed.notify_all()
        return response

    def _answer(self, method: str, params: JSON) -> web.Response:
        if self._outage:
            return _error(502, "Bad Gateway")
        name = method.lower()
        if self._rate_limited and name != "getme":
            self._rate_limited -= 1
            retry = self._retry_after
            return _error(429, f"Too Many Requests: retry after {retry}", retry_after=retry)
        handler = {
            "getme": self._get_me,
            "sendmessage": self._send_message,
            "answercallbackquery": self._answer_callback_query,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "setmycommands": self._set_my_commands,
        }.get(name)
        if handler is None:
            return _error(404, "Not Found")
        response = handler(params)
        if name == "sendmessage" and response.status == 200 and self._limit_after_delivery is not None:
            (self._rate_limited, self._retry_after), self._limit_after_delivery = self._limit_after_delivery, None
        return response

    def _me(self) -> JSON:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Beacon",
            "username": "beacon_bot",
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _get_me(self, params: JSON) -> web.Response:
        return _ok(self._me())

    def _send_message(self, params: JSON) -> web.Response:
        chat_id = params.get("chat_id")
        text = params.get("text")
        if not isinstance(chat_id, int):
            return _error(400, "Bad Request: chat_id is empty" if chat_id is None else "Bad Request: chat not found")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if _utf16_len(text) > _MAX_TEXT:
            return _error(400, "Bad Request: message is too long")
        if chat_id in self._unknown:
            return _error(400, "Bad Request: chat not found")
        if chat_id in self._blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        message: JSON = {
            "message_id": next(self._message_ids[chat_id]),
            "from": self._me(),
            "chat": _private_chat(chat_id),
            "date": int(time.time()),
            "text": text,
        }
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:  # only inline keyboards come back
            message["reply_markup"] = markup
        return _ok(message)

    def _answer_callback_query(self, params: JSON) -> web.Response:
        if not params.get("callback_query_id"):
            return _error(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        return _ok(True)

    def _set_webhook(self, params: JSON) -> web.Response:
        self.webhook = {"url": params.get("url", ""), "allowed_updates": params.get("allowed_updates")}
        return _ok(True, description="Webhook was set")

    def _delete_webhook(self, params: JSON) -> web.Response:
        self.webhook = {"url": ""}
        return _ok(True, description="Webhook was deleted")

    def _get_webhook_info(self, params: JSON) -> web.Response:
        info: JSON = {"url": self.webhook["url"], "has_custom_certificate": False, "pending_update_count": 0}
        if self.webhook.get("allowed_updates"):
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return _ok(info)

    def _set_my_commands(self, params: JSON) -> web.Response:
        commands = params.get("commands")
        if not isinstance(commands, list) or not commands:
            return _error(400, "Bad Request: commands must be non-empty")
        self.commands[params.get("language_code")] = commands
        return _ok(True)


def _ok(result: Any, description: str | None = None) -> web.Response:
    body: JSON = {"ok": True, "result": result}
    if description:
        body["description"] = description
    return web.json_response(body)


def _coerce(name: str, value: Any) -> Any:
    """A form value as Telegram reads it: objects, numbers and booleans arrive JSON-encoded."""
    if not isinstance(value, str):
        return f"<file {getattr(value, 'filename', '?')}>"
    if name in _TEXT_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


async def _params(request: web.Request) -> JSON:
    """Query string and body (JSON, urlencoded or multipart) merged into one dict."""
    params: JSON = {k: _coerce(k, v) for k, v in request.query.items()}
    if request.method != "POST" or not request.can_read_body:
        return params
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
    else:
        form = await request.post()
        params.update({k: _coerce(k, v) for k, v in form.items()})
    return params


# --- update bodies as Telegram posts them --------------------------------------------


def message_update(update_id: int, chat_id: int, text: str, language_code: str | None = "en") -> JSON:
    """A private text message; "/command ..." texts carry a bot_command entity."""
    message: JSON = {
        "message_id": update_id,
        "from": _user(chat_id, language_code),
        "chat": _private_chat(chat_id),
        "date": int(time.time()),
        "text": text,
    }
    if text.startswith("/"):
        command = text.split(maxsplit=1)[0]
        message["entities"] = [{"offset": 0, "length": _utf16_len(command), "type": "bot_command"}]
    return {"update_id": update_id, "message": message}


def callback_update(update_id: int, chat_id: int, data: str, message_id: int) -> JSON:
    """A press on an inline button under the bot's message ``message_id``."""
    return {
        "update_id": update_id,
        "callback_query": {
            "id": f"{chat_id}{update_id}",
            "from": _user(chat_id),
            "message": {
                "message_id": message_id,
                "from": {"id": 123456789, "is_bot": True, "first_name": "Beacon", "username": "beacon_bot"},
                "chat": _private_chat(chat_id),
                "date": int(time.time()),
                "text": "Choose",
            },
            "chat_instance": str(-chat_id),
            "data": data,
        },
    }


def contact_update(update_id: int, chat_id: int, phone: str, user_id: int | None) -> JSON:
    """A shared contact card; it is the sender's own when ``user_id == chat_id``."""
    contact: JSON = {"phone_number": phone, "first_name": "Test"}
    if user_id is not None:
        contact["user_id"] = user_id
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": _user(chat_id),
            "chat": _private_chat(chat_id),
            "date": int(time.time()),
            "contact": contact,
        },
    }
