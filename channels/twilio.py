"""Twilio SMS, WhatsApp and voice calls: signed webhooks in, the Messaging and Calls REST APIs out.

Inbound messages and status callbacks arrive as form POSTs signed with the
account's Auth Token (``X-Twilio-Signature``). Sends go through the official
SDK's asyncio client, one aiohttp session for the channel's lifetime.

Nothing here logs or raises phone numbers or message text: only message SIDs,
outbox ids and Twilio error codes.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import aiohttp
from multidict import MultiDict
from twilio.base.exceptions import TwilioException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from channels.base import (
    Inbound,
    Outbound,
    Received,
    SendError,
    Sent,
    StatusUpdate,
    WebhookCall,
    WebhookRejected,
)
from channels.limits import Limiter, Limiters, rate_limiter
from channels.settings import TwilioSettings
from channels.voice import VOICE_STATUS_PATH, CallEvent, call_event, call_params, call_status
from domain.vocabulary import ChannelKind, ProviderName

log = logging.getLogger(__name__)

MESSAGES_PATH = "/webhooks/twilio/messages"
STATUS_PATH = "/webhooks/twilio/status"
MAX_BODY = 64 * 1024
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
WHATSAPP_PREFIX = "whatsapp:"
CONNECTIONS = 200  # open connections to the REST API at most: the sender's sends in flight
SESSION_EXPIRED = "63016"  # WhatsApp: outside the 24-hour customer service window
VOICE_LIMIT = "voice:"  # the rate limit of calls from a number is kept apart from its messages

# Twilio error codes (https://www.twilio.com/docs/api/errors) that say the number cannot be reached.
UNREACHABLE_CODES = frozenset({21211, 21614, 30003, 30005, 30006})
OPTED_OUT_CODES = frozenset({21610})
AUTH_CODES = frozenset({20003})  # "Authenticate": wrong or rotated Account SID / Auth Token
_QUEUED = frozenset({"accepted", "queued", "sending"})


def map_status(status: str) -> str:
    """Twilio's MessageStatus as one of ``Delivery``; unknown values pass through."""
    return "queued" if status in _QUEUED else status


@dataclass(slots=True)
class _Reply:
    """Headers of the REST response a send received, as far as error mapping needs them."""

    retry_after: str | None = None


# The SDK's TwilioRestException carries no response headers. Each send puts a
# fresh _Reply here; the context variable is per asyncio task, so concurrent
# sends never see each other's responses.
_reply: ContextVar[_Reply | None] = ContextVar("twilio_reply", default=None)


class _HttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's aiohttp client (the SDK's documented extension point), with three additions.

    It hands the Retry-After header back to the sending task, it sends Basic auth as a
    header rather than through aiohttp's deprecated ``auth=`` argument, and its session
    keeps up to ``connections`` connections open (aiohttp's default of 100 would hold
    back the sender's concurrent sends).
    """

    def __init__(self, connections: int = CONNECTIONS) -> None:
        super().__init__(pool_connections=False)
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections))

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Make the request as the SDK does and record Retry-After for the current send."""
        if auth is not None:
            # aiohttp deprecates request(auth=...) and BasicAuth; send the same RFC 7617 header directly.
            credentials = base64.b64encode(":".join(auth).encode()).decode()
            headers = {**(headers or {}), "Authorization": f"Basic {credentials}"}
        response = await super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=None,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        reply = _reply.get()
        if reply is not None and response.headers is not None:
            reply.retry_after = response.headers.get("Retry-After")
        return response


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After as seconds from now: either delta-seconds or an HTTP date."""
    if not retry_after:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(retry_after)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _rest_error(status: int, code: int | None, retry_after: float | None) -> SendError:
    """Classify an error answer from the REST API; the reason never repeats Twilio's text (it names numbers)."""
    label = str(code or status)
    if status == 429 or status >= 500:
        return SendError(label, f"Twilio API HTTP {status}", permanent=False, retry_after=retry_after)
    if status == 401 or code in AUTH_CODES:
        # Credentials being rotated (or briefly out of sync) must not fail the queue for good:
        # retried with backoff, and the message fails only when its attempts run out.
        return SendError(label, "Twilio refused the credentials", permanent=False, retry_after=retry_after)
    if code in UNREACHABLE_CODES:
        return SendError(label, "recipient unreachable", permanent=True, unreachable=True)
    if code in OPTED_OUT_CODES:
        return SendError(label, "recipient unsubscribed", permanent=True, opted_out=True)
    return SendError(label, f"Twilio rejected the message (HTTP {status})", permanent=True)


def _default_rate(sender: str) -> float:
    """Messages per second Twilio accepts by default for a sender.

    80 for a WhatsApp sender (Twilio's documented default per WhatsApp sender), 100 for a
    Messaging Service or an SMS short code, 1 for an SMS long code.
    """
    if sender.startswith(WHATSAPP_PREFIX):
        return 80.0
    if sender.startswith("MG"):
        return 100.0
    digits = sender.lstrip("+")
    return 100.0 if digits.isdigit() and len(digits) <= 8 else 1.0


class TwilioChannel:
    """SMS, WhatsApp and voice calls through one Twilio account."""

    name: ProviderName = ProviderName.TWILIO
    webhook_paths: tuple[str, ...] = (MESSAGES_PATH, STATUS_PATH, VOICE_STATUS_PATH)
    max_body = MAX_BODY
    send_timeout = 15.0  # seconds for one REST call; the SDK's aiohttp client sets none

    def __init__(self, settings: TwilioSettings, public_url: str, *, rate_limits: bool = True,
                 limiters: Limiters = rate_limiter) -> None:
        self._settings = settings
        self._public_url = public_url
        self._status_callback = public_url.rstrip("/") + STATUS_PATH
        # Calls are placed only from a configured voice number; answering calls needs none.
        voice = {ChannelKind.VOICE} if settings.voice_from else set()
        self.channels = frozenset({ChannelKind.SMS, ChannelKind.WHATSAPP, *voice})
        self._rate_limits = rate_limits
        self._make_limiter = limiters
        self._validator = RequestValidator(settings.auth_token)
        self._limiters: dict[str, Limiter] = {}
        self._http: _HttpClient | None = None
        self._client: Client | None = None

    async def start(self) -> None:
        """Open the SDK client and its aiohttp session, shared by all sends."""
        self._http = _HttpClient()
        client = Client(self._settings.account_sid, self._settings.auth_token, http_client=self._http)
        # Messages live on the "api" domain. Its base_url is a plain attribute that
        # every request URL is built from (Domain.absolute_url), so pointing it at
        # settings.api_base_url redirects sends (to a regional endpoint, a proxy or
        # a test double) without touching paths, auth or headers. Edge and region
        # are cleared so TWILIO_EDGE/TWILIO_REGION from the environment cannot
        # rewrite that host behind the configuration's back.
        client.api.base_url = self._settings.api_base_url
        client.edge = None
        client.region = None
        self._client = client

    async def close(self) -> None:
        """Close the aiohttp session."""
        if self._http is not None:
            await self._http.close()
        self._http = None
        self._client = None

    async def receive(self, call: WebhookCall) -> Received:
        """Verify the signature over ``call.url`` and the form, and parse an inbound message or a status callback."""
        if call.path not in self.webhook_paths:
            raise WebhookRejected(404, "not a Twilio webhook path")
        params = self._verified(call)
        if call.path == VOICE_STATUS_PATH:
            return Received(statuses=[_call_status_update(params)])
        sid = params.get("MessageSid")
        if not sid:
            raise WebhookRejected(400, "MessageSid missing")
        if call.path == STATUS_PATH:
            return Received(statuses=[_status_update(sid, params)])
        sender = params.get("From")
        if not sender:
            raise WebhookRejected(400, "From missing")
        whatsapp = sender.startswith(WHATSAPP_PREFIX)
        inbound = Inbound(
            channel=ChannelKind.WHATSAPP if whatsapp else ChannelKind.SMS,
            address=sender.removeprefix(WHATSAPP_PREFIX),
            text=params.get("Body", ""),
            provider_id=sid,
            received_at=datetime.now(UTC),
            opt_out=params.get("OptOutType") or None,
        )
        return Received(messages=[inbound], ack_body=EMPTY_TWIML, ack_content_type="text/xml")

    def receive_call(self, call: WebhookCall) -> CallEvent:
        """Verify the signature of a call's webhook and parse it; WebhookRejected when it must not be answered."""
        event = call_event(self._verified(call), dict(parse_qsl(urlsplit(call.url).query)))
        if event is None or not event.address:
            raise WebhookRejected(400, "CallSid or caller missing")
        return event

    def _verified(self, call: WebhookCall) -> MultiDict[str]:
        """The form of a webhook whose X-Twilio-Signature holds for its URL; 403 otherwise."""
        params = _form(call.body)
        signature = call.headers.get("X-Twilio-Signature", "")
        if not signature or not self._signed(call.url, params, signature):
            log.warning("twilio webhook signature rejected path=%s", call.path)
            raise WebhookRejected(403, "invalid Twilio signature")
        return params

    def _signed(self, url: str, params: MultiDict[str], signature: str) -> bool:
        """Whether Twilio signed these params for this URL.

        Twilio signs the URL exactly as configured in the console, so one HMAC over that URL
        settles a genuine request; only a mismatch pays for the SDK's full check, which also
        tries the URL with and without an explicit port.
        """
        expected = self._validator.compute_signature(url, params)
        if hmac.compare_digest(expected.encode(), signature.encode()):
            return True
        return bool(self._validator.validate(url, params, signature))

    async def acknowledge(self, message: Inbound) -> None:
        """Nothing to do: the empty TwiML answer already acknowledged the message."""

    async def send(self, message: Outbound) -> Sent:
        """Create the message through the REST API, waiting for the sender's rate limit first."""
        if self._client is None:
            raise RuntimeError("TwilioChannel.start() has not been called")
        sender, params = self._create_params(message)
        limiter = self._limiter(sender)
        if limiter is not None:
            await limiter.acquire()
        reply = _Reply()
        token = _reply.set(reply)
        try:
            async with asyncio.timeout(self.send_timeout):
                if message.channel == ChannelKind.VOICE:
                    created = await self._client.calls.create_async(**params)
                else:
                    created = await self._client.messages.create_async(**params)
        except TwilioException as exc:
            status = getattr(exc, "status", None)
            if not isinstance(status, int):
                raise SendError("sdk", f"Twilio SDK error ({type(exc).__name__})", permanent=True) from None
            code = getattr(exc, "code", None)
            error = _rest_error(status, code if isinstance(code, int) else None, _seconds(reply.retry_after))
            log.info("twilio send failed outbox_id=%s code=%s", message.outbox_id, error.code)
            raise error from None
        except TimeoutError:
            raise SendError("timeout", "Twilio API did not answer in time", permanent=False) from None
        except aiohttp.ClientError as exc:
            reason = f"Twilio API unreachable ({type(exc).__name__})"
            raise SendError("connection", reason, permanent=False) from None
        finally:
            _reply.reset(token)
        sid = str(created.sid)
        log.debug("twilio sent outbox_id=%s sid=%s", message.outbox_id, sid)
        return Sent(provider_id=sid, status=map_status(str(created.status or "queued")))

    def fallback_for(self, update: StatusUpdate, original: Outbound) -> Outbound | None:
        """After WhatsApp 63016 (session closed): the approved template, else the same text by SMS."""
        if original.channel != ChannelKind.WHATSAPP or update.error_code != SESSION_EXPIRED:
            return None
        if self._settings.whatsapp_template_sid and not original.template:
            return replace(original, template=True)
        if self._settings.messaging_service_sid or self._settings.sms_from:
            return replace(original, channel=ChannelKind.SMS, template=False)
        return None

    def _create_params(self, message: Outbound) -> tuple[str, dict[str, Any]]:
        """The sender the rate limit applies to, and the keyword arguments for ``create_async``."""
        settings = self._settings
        if message.channel == ChannelKind.VOICE:
            if not settings.voice_from:
                raise SendError("no_sender", "no voice number configured", permanent=True)
            # Calls have a rate of their own, even from a number that also sends SMS.
            placed = call_params(self._public_url, settings.voice_from, message.address, message.outbox_id)
            return VOICE_LIMIT + settings.voice_from, placed
        params: dict[str, Any] = {"status_callback": self._status_callback}
        if message.channel == ChannelKind.WHATSAPP:
            if not settings.whatsapp_from:
                raise SendError("no_sender", "no WhatsApp sender configured", permanent=True)
            sender = settings.whatsapp_from
            params.update(to=WHATSAPP_PREFIX + message.address, from_=sender)
        elif message.channel == ChannelKind.SMS:
            params["to"] = message.address
            if settings.messaging_service_sid:
                sender = settings.messaging_service_sid
                params["messaging_service_sid"] = sender
            elif settings.sms_from:
                sender = settings.sms_from
                params["from_"] = sender
            else:
                raise SendError("no_sender", "no SMS sender configured", permanent=True)
        else:
            raise SendError("channel", f"Twilio does not serve {message.channel}", permanent=True)
        if message.channel == ChannelKind.WHATSAPP and message.template and settings.whatsapp_template_sid:
            params["content_sid"] = settings.whatsapp_template_sid
            params["content_variables"] = json.dumps({"1": message.text}, ensure_ascii=False)
        else:
            params["body"] = message.text
        return sender, params

    def _limiter(self, sender: str) -> Limiter | None:
        """The sender's limiter, made on first use; None when rate limits are off."""
        if not self._rate_limits:
            return None
        limiter = self._limiters.get(sender)
        if limiter is None:
            if sender.startswith(VOICE_LIMIT):
                rate = self._settings.voice_calls_per_second
            else:
                rate = self._settings.rate_per_second or _default_rate(sender)
            limiter = self._make_limiter(rate, f"twilio:{sender}")
            self._limiters[sender] = limiter
        return limiter


def _form(body: bytes) -> MultiDict[str]:
    """Parse an application/x-www-form-urlencoded body, keeping repeated and empty fields."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected(400, "malformed form body") from None
    # parse_qsl's result, without unquoting the many fields that need none (most of Twilio's are
    # plain or empty); parse_qsl itself is a tenth of a webhook's cost.
    fields = MultiDict[str]()
    for field in text.split("&"):
        if field:
            name, _, value = field.partition("=")
            fields.add(_unquote(name), _unquote(value))
    return fields


def _unquote(text: str) -> str:
    return unquote_plus(text) if "%" in text or "+" in text else text


def _status_update(sid: str, params: MultiDict[str]) -> StatusUpdate:
    """A status callback as a StatusUpdate; ErrorCode only when Twilio sent one."""
    status = params.get("MessageStatus")
    if not status:
        raise WebhookRejected(400, "MessageStatus missing")
    return StatusUpdate(provider_id=sid, status=map_status(status), error_code=params.get("ErrorCode") or None)


def _call_status_update(params: MultiDict[str]) -> StatusUpdate:
    """A call's status callback as a StatusUpdate of the outbox row that placed the call."""
    sid, status = params.get("CallSid"), params.get("CallStatus")
    if not sid or not status:
        raise WebhookRejected(400, "CallSid or CallStatus missing")
    mapped, code = call_status(status, params.get("AnsweredBy") or None)
    return StatusUpdate(provider_id=sid, status=mapped, error_code=code)
