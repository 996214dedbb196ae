"""A local stand-in for Twilio's Messages REST API (2010-04-01), for tests.

It speaks the same wire format as api.twilio.com for the Message resource:
HTTP basic auth with the Account SID and Auth Token, form-encoded create and
update, JSON resources and Twilio-style error bodies (``code``, ``message``,
``more_info``, ``status``). Tests point ``TwilioSettings.api_base_url`` at
``TwilioDouble.base_url`` and drive failures with the control methods.

Webhooks are the other direction: :func:`sign` and :func:`signed_form_post`
build requests the way Twilio signs them, with the SDK's RequestValidator.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from twilio.request_validator import RequestValidator

from domain.segments import segments

API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
SERVICE_SID = re.compile(r"^MG[0-9a-f]{32}$")
MAX_BODY = 1600

# Twilio's wording for the errors tests ask for by code (HTTP 400 unless listed in STATUS_FOR_CODE).
ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service is unavailable. Please try again",
    21211: "Invalid 'To' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21609: "Invalid 'StatusCallback'",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21656: "The ContentVariables Parameter is invalid.",
    21701: "The Messaging Service Sid is invalid.",
    21910: "Invalid From and To pair. From and To should be of the same channel",
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
}
STATUS_FOR_CODE = {20003: 401, 20404: 404, 20429: 429, 20500: 500, 20503: 503}


def sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The X-Twilio-Signature Twilio would send for a form POST of ``params`` to ``url``."""
    return RequestValidator(auth_token).compute_signature(url, dict(params))


def signed_form_post(auth_token: str, url: str, params: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """Headers and body of a webhook POST to ``url``, signed like Twilio signs it."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "X-Twilio-Signature": sign(auth_token, url, params),
        "User-Agent": "TwilioProxy/1.1",
    }
    return headers, urlencode(params)


class TwilioApiError(Exception):
    """An error answer, rendered as Twilio's JSON error body."""

    def __init__(self, code: int, status: int | None = None, message: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.status = status or STATUS_FOR_CODE.get(code, 400)
        self.message = message or ERROR_MESSAGES.get(code, f"Error {code}")

    def response(self) -> web.Response:
        """The HTTP answer Twilio gives for this error."""
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if self.status == 401 else None
        return web.json_response(body, status=self.status, headers=headers)


@dataclass
class StoredMessage:
    """One message the double accepted, with the form fields it was created from."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    content_sid: str | None
    content_variables: str | None
    status_callback: str | None
    status: str
    date_created: datetime
    arrived: float = field(default_factory=time.monotonic)  # time.monotonic() when accepted

    def resource(self) -> dict[str, Any]:
        """The Message resource as Twilio's JSON shows it."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"
        created = format_datetime(self.date_created)
        whatsapp = self.to.startswith("whatsapp:")
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": created,
            "date_sent": None,
            "date_updated": created,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            # Twilio reports 0 until a Messaging Service has picked the sender.
            "num_segments": "0" if self.from_ is None else "1" if whatsapp else str(segments(self.body).segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": self.to,
            "uri": uri,
        }


class TwilioDouble:
    """The Messages API on 127.0.0.1 with a random free port; see the module docstring."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[StoredMessage] = []
        self.requests = 0  # every request that reached the double, errors included
        self.delay = 0.0  # seconds to wait before answering each request
        self._failures: list[TwilioApiError] = []
        self._rate_limited = 0
        self._retry_after: str | None = None
        self._outage = False
        self._hang = asyncio.Event()  # set: no request is hanging; cleared: every request hangs
        self._hang.set()
        self.hung = 0  # requests that hung (never accepted)
        self._number_errors: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.extensions: list[Any] = []  # more resources on the same server (twilio_voice.VoiceApi), with install(app)

    # -- controls --------------------------------------------------------------

    def fail_next(self, n: int, status: int, code: int, message: str | None = None) -> None:
        """Answer the next ``n`` requests with this error."""
        self._failures.extend(TwilioApiError(code, status, message) for _ in range(n))

    def outage(self, on: bool) -> None:
        """While on, every request gets 503 (code 20503)."""
        self._outage = on

    def hang(self, on: bool) -> None:
        """While on, requests get no answer: they wait until the hang ends, then are refused with 503
        unaccepted (by then the client has usually timed out and gone)."""
        if on:
            self._hang.clear()
        else:
            self._hang.set()

    def rate_limit_next(self, n: int, retry_after: float | None = None) -> None:
        """Answer the next ``n`` requests with 429 (code 20429), with a Retry-After header if given."""
        self._rate_limited = n
        self._retry_after = None if retry_after is None else f"{retry_after:g}"

    def error_for_number(self, number: str, code: int) -> None:
        """Refuse every create to ``number`` (E.164, with or without ``whatsapp:``) with ``code``."""
        self._number_errors[number.removeprefix("whatsapp:")] = code

    def sent_to(self, to: str) -> list[StoredMessage]:
        """Accepted messages whose To is exactly ``to``."""
        return [m for m in self.messages if m.to == to]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until ``predicate()`` is true, re-checked after every request; TimeoutError otherwise."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Serve on 127.0.0.1 and a free port; ``base_url`` is set once this returns."""
        app = web.Application(middlewares=[self._middleware])
        prefix = f"/{API_VERSION}/Accounts/{{account}}/Messages"
        app.router.add_post(prefix + ".json", self._create)
        app.router.add_get(prefix + ".json", self._list)
        app.router.add_get(prefix + "/{sid}.json", self._fetch)
        app.router.add_post(prefix + "/{sid}.json", self._update)
        for extension in self.extensions:
            extension.install(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop serving."""
        self._hang.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TwilioDouble:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- HTTP ------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests += 1
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if not self._hang.is_set():
                self.hung += 1
                await self._hang.wait()
                raise TwilioApiError(20503)
            self._check_service()
            self._check_auth(request)
            if self._failures:
                raise self._failures.pop(0)
            response: web.StreamResponse = await handler(request)
        except TwilioApiError as error:
            response = error.response()
            if error.status == 429 and self._retry_after is not None:
                response.headers["Retry-After"] = self._retry_after
        response.headers["Twilio-Request-Id"] = "RQ" + secrets.token_hex(16)
        async with self._changed:
            self._changed.notify_all()
        return response

    def _check_service(self) -> None:
        if self._outage:
            raise TwilioApiError(20503)
        if self._rate_limited:
            self._rate_limited -= 1
            raise TwilioApiError(20429)

    def _check_auth(self, request: web.Request) -> None:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        valid = secrets.compare_digest(password.encode(), self.auth_token.encode())
        if scheme.lower() != "basic" or user != self.account_sid or not valid:
            raise TwilioApiError(20003)
        if request.match_info.get("account") != self.account_sid:
            raise TwilioApiError(20404, message=f"The requested resource {request.path} was not found")

    def _find(self, request: web.Request) -> StoredMessage:
        sid = request.match_info["sid"]
        for message in self.messages:
            if message.sid == sid:
                return message
        raise TwilioApiError(20404, message=f"The requested resource {request.path} was not found")

    async def _create(self, request: web.Request) -> web.Response:
        form = await request.post()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        message = self._validate(fields)
        self.messages.append(message)
        return web.json_response(message.resource(), status=201)

    def _validate(self, form: dict[str, str]) -> StoredMessage:
        """Apply Twilio's checks, in Twilio's order, and build the stored message."""
        to, from_ = form.get("To", ""), form.get("From") or None
        service = form.get("MessagingServiceSid") or None
        body, content_sid = form.get("Body", ""), form.get("ContentSid") or None
        if not to:
            raise TwilioApiError(21604)
        if from_ is None and service is None:
            raise TwilioApiError(21603)
        if service is not None and not SERVICE_SID.match(service):
            raise TwilioApiError(21701)
        if not body and content_sid is None and "MediaUrl" not in form:
            raise TwilioApiError(21602)
        if len(body) > MAX_BODY:
            raise TwilioApiError(21617)
        number = to.removeprefix("whatsapp:")
        if not E164.match(number):
            raise TwilioApiError(21211, message=f"The 'To' number {to} is not a valid phone number.")
        if from_ is not None and from_.startswith("whatsapp:") != to.startswith("whatsapp:"):
            raise TwilioApiError(21910)
        variables = form.get("ContentVariables")
        if variables is not None and not _json_object(variables):
            raise TwilioApiError(21656)
        callback = form.get("StatusCallback")
        if callback is not None and urlsplit(callback).scheme not in ("http", "https"):
            raise TwilioApiError(21609)
        if number in self._number_errors:
            raise TwilioApiError(self._number_errors[number])
        return StoredMessage(
            sid="SM" + secrets.token_hex(16),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            messaging_service_sid=service,
            body=body,
            content_sid=content_sid,
            content_variables=variables,
            status_callback=callback,
            # With a Messaging Service and no From, Twilio answers "accepted" while it picks a sender.
            status="accepted" if from_ is None else "queued",
            date_created=datetime.now(UTC).replace(microsecond=0),
        )

    async def _list(self, request: web.Request) -> web.Response:
        query = request.query
        found = [
            m
            for m in reversed(self.messages)
            if query.get("To") in (None, m.to) and query.get("From") in (None, m.from_)
        ]
        size = int(query.get("PageSize", "50"))
        uri = f"{request.path}?PageSize={size}&Page=0"
        return web.json_response(
            {
                "messages": [m.resource() for m in found[:size]],
                "end": max(0, min(size, len(found)) - 1),
                "first_page_uri": uri,
                "next_page_uri": None,
                "page": 0,
                "page_size": size,
                "previous_page_uri": None,
                "start": 0,
                "uri": uri,
            }
        )

    async def _fetch(self, request: web.Request) -> web.Response:
        return web.json_response(self._find(request).resource())

    async def _update(self, request: web.Request) -> web.Response:
        """Redact (Body="") or cancel (Status=canceled) a message, the two updates Twilio allows."""
        message = self._find(request)
        form = await request.post()
        if form.get("Body") == "":
            message.body = ""
        if form.get("Status") == "canceled":
            message.status = "canceled"
        return web.json_response(message.resource())


def _json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False
