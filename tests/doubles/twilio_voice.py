"""A local stand-in for Twilio Programmable Voice, for tests: the Calls REST resource and a caller.

:class:`VoiceApi` adds ``POST /2010-04-01/Accounts/{sid}/Calls.json`` to a
:class:`tests.doubles.twilio_api.TwilioDouble` (same server, auth and error controls), so the SDK's
``client.calls.create`` reaches it. Each accepted call is a :class:`PlacedCall`.

:class:`Phone` plays the person on the other end the way Twilio plays a call against Beacon: it
POSTs signed webhooks (``CallSid``, ``From``, ``To``, ``Direction``, ``Digits``, ``AnsweredBy``) to
the voice URL, walks the TwiML it gets back (``<Say>``, ``<Play>``, ``<Gather>``, ``<Redirect>``,
``<Hangup>``), presses keys by posting to the ``<Gather>`` action, lets a ``<Gather>`` time out by
following the ``<Redirect>`` after it, and sends the status callbacks a call produces.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from tests.doubles.twilio_api import API_VERSION, E164, TwilioApiError, sign

# What a webhook POST goes through: (path with query, form, headers) -> (HTTP status, body).
Post = Callable[[str, dict[str, str], dict[str, str]], Awaitable[tuple[int, str]]]
MACHINE_DETECTION = ("Enable", "DetectMessageEnd")


@dataclass
class PlacedCall:
    """One call the double accepted, with the fields it was created from."""

    sid: str
    account_sid: str
    to: str
    from_: str
    url: str | None
    twiml: str | None
    status_callback: str | None
    status_callback_event: list[str]
    machine_detection: str | None
    status: str = "queued"
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def resource(self) -> dict[str, Any]:
        """The Call resource as Twilio's JSON shows it."""
        created = format_datetime(self.date_created)
        return {
            "account_sid": self.account_sid, "answered_by": None, "api_version": API_VERSION,
            "caller_name": None, "date_created": created, "date_updated": created, "direction": "outbound-api",
            "duration": None, "end_time": None, "forwarded_from": None, "from": self.from_,
            "from_formatted": self.from_, "parent_call_sid": None, "phone_number_sid": None, "price": None,
            "price_unit": "USD", "sid": self.sid, "start_time": None, "status": self.status,
            "to": self.to, "to_formatted": self.to,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json",
        }


class VoiceApi:
    """The Calls resource on a TwilioDouble; install it before the double starts."""

    def __init__(self, account_sid: str) -> None:
        self.account_sid = account_sid
        self.calls: list[PlacedCall] = []
        self._number_errors: dict[str, int] = {}

    def install(self, app: web.Application) -> None:
        """Add the Calls routes to the double's app."""
        app.router.add_post(f"/{API_VERSION}/Accounts/{{account}}/Calls.json", self._create)

    def error_for_number(self, number: str, code: int) -> None:
        """Refuse every call to ``number`` with ``code`` (e.g. 21215: not permitted to call the region)."""
        self._number_errors[number] = code

    def placed_to(self, to: str) -> list[PlacedCall]:
        """Accepted calls whose To is exactly ``to``."""
        return [c for c in self.calls if c.to == to]

    async def _create(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        events = (await request.post()).getall("StatusCallbackEvent", [])
        to, from_ = form.get("To", ""), form.get("From", "")
        if not to:
            raise TwilioApiError(21201, message="No 'To' number is specified")
        if not from_:
            raise TwilioApiError(21213, message="No 'From' number is specified")
        if not E164.match(to):
            raise TwilioApiError(21211, message=f"The 'To' number {to} is not a valid phone number.")
        if not form.get("Url") and not form.get("Twiml") and not form.get("ApplicationSid"):
            raise TwilioApiError(21205, message="Url parameter is required.")
        detection = form.get("MachineDetection")
        if detection is not None and detection not in MACHINE_DETECTION:
            raise TwilioApiError(21626, message="MachineDetection must be Enable or DetectMessageEnd")
        if to in self._number_errors:
            raise TwilioApiError(self._number_errors[to])
        call = PlacedCall(sid="CA" + secrets.token_hex(16), account_sid=self.account_sid, to=to, from_=from_,
                          url=form.get("Url"), twiml=form.get("Twiml"), status_callback=form.get("StatusCallback"),
                          status_callback_event=[str(e) for e in events], machine_detection=detection)
        self.calls.append(call)
        return web.json_response(call.resource(), status=201)


@dataclass(frozen=True)
class Heard:
    """One thing the caller heard: a <Say> (language, voice, text) or a <Play> (its URL in ``text``)."""

    verb: str
    text: str
    language: str | None = None
    voice: str | None = None


class Phone:
    """A person's phone on one call with Beacon; see the module docstring."""

    def __init__(self, post: Post, auth_token: str, public_url: str, number: str, beacon_number: str) -> None:
        self._post = post
        self._auth_token = auth_token
        self._public_url = public_url.rstrip("/")
        self.number = number
        self.beacon_number = beacon_number
        self.call_sid = ""
        self.outbound = False
        self.answered_by: str | None = None
        self.heard: list[Heard] = []  # everything heard on this call, in order
        self.last: list[Heard] = []  # what the last webhook's TwiML said
        self.gather: str | None = None  # the action URL a keypress goes to; None: nothing is being asked
        self.redirect: str | None = None  # where a silence leads
        self.hung_up = False
        self.statuses: list[int] = []  # HTTP status of every webhook posted

    # -- the call ----------------------------------------------------------------------------------------------

    async def dial(self, path: str = "/webhooks/twilio/voice") -> list[Heard]:
        """Call Beacon's number (an inbound call)."""
        self.call_sid = "CA" + secrets.token_hex(16)
        return await self._webhook(self._public_url + path, {"CallStatus": "ringing"})

    async def pick_up(self, call: PlacedCall, answered_by: str = "human") -> list[Heard]:
        """Answer a call Beacon placed (``answered_by`` as machine detection reports it)."""
        assert call.url, "a call without a TwiML URL"
        self.call_sid, self.outbound = call.sid, True
        self.answered_by = answered_by if call.machine_detection else None
        return await self._webhook(call.url, {"CallStatus": "in-progress"})

    async def press(self, digits: str) -> list[Heard]:
        """Press keys while a <Gather> waits."""
        assert self.gather is not None and not self.hung_up, "nothing is asking for keys"
        return await self._webhook(self.gather, {"CallStatus": "in-progress", "Digits": digits})

    async def wait(self) -> list[Heard]:
        """Press nothing: the <Gather> times out and Twilio goes on to the <Redirect> after it."""
        assert not self.hung_up, "the call has ended"
        if self.redirect is None:
            self.hung_up = True
            self.last = []
            return []
        return await self._webhook(self.redirect, {"CallStatus": "in-progress"})

    async def visit(self, url: str) -> list[Heard]:
        """POST this call's webhook to any URL, one Beacon never handed out included (tampering with a URL
        breaks Twilio's signature; this signs it anyway, as a test of what Beacon does with odd queries)."""
        if not self.call_sid:
            self.call_sid = "CA" + secrets.token_hex(16)
        return await self._webhook(url, {"CallStatus": "in-progress"})

    def said(self) -> str:
        """The texts of the last TwiML's <Say>s, one line each."""
        return "\n".join(h.text for h in self.last if h.verb == "Say")

    # -- webhooks ----------------------------------------------------------------------------------------------

    def _params(self, extra: Mapping[str, str]) -> dict[str, str]:
        caller, called = (self.beacon_number, self.number) if self.outbound else (self.number, self.beacon_number)
        params = {"CallSid": self.call_sid, "AccountSid": "AC" + "0" * 32, "From": caller, "To": called,
                  "Direction": "outbound-api" if self.outbound else "inbound", "ApiVersion": API_VERSION, **extra}
        if self.answered_by:
            params["AnsweredBy"] = self.answered_by
        return params

    async def _webhook(self, url: str, extra: Mapping[str, str]) -> list[Heard]:
        params = self._params(extra)
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"X-Twilio-Signature": sign(self._auth_token, url, params)}
        status, body = await self._post(path, params, headers)
        self.statuses.append(status)
        assert status == 200, f"voice webhook answered {status}: {body}"
        self._walk(body)
        return self.last

    def _walk(self, body: str) -> None:
        """Run the TwiML: speech heard, the <Gather> pending, the <Redirect> after it, or a hang-up."""
        root = ET.fromstring(body)
        assert root.tag == "Response", "TwiML must be a <Response>"
        self.last, self.gather, self.redirect = [], None, None
        for verb in root:
            if verb.tag == "Gather":
                assert verb.get("input", "dtmf") == "dtmf", "callers are never recorded: keypad input only"
                self.gather = verb.get("action")
                for inner in verb:
                    self._hear(inner)
            elif verb.tag == "Redirect":
                self.redirect = (verb.text or "").strip()
                break
            elif verb.tag == "Hangup":
                self.hung_up = True
                break
            elif verb.tag in ("Record", "Dial", "Connect", "Stream"):
                raise AssertionError(f"Beacon must not use <{verb.tag}>")
            else:
                self._hear(verb)
        else:
            if self.gather is None:
                self.hung_up = True  # a TwiML document that runs out ends the call
        self.heard += self.last

    def _hear(self, verb: ET.Element) -> None:
        if verb.tag == "Say":
            self.last.append(Heard("Say", verb.text or "", verb.get("language"), verb.get("voice")))
        elif verb.tag == "Play":
            self.last.append(Heard("Play", (verb.text or "").strip()))
        elif verb.tag == "Pause":
            return
        else:
            raise AssertionError(f"unexpected <{verb.tag}> inside <Gather>")


async def report(post: Post, auth_token: str, call: PlacedCall, status: str, *,
                 answered_by: str | None = None, duration: int | None = None) -> int:
    """Send the status callback Twilio sends for ``call`` reaching ``status``; the HTTP status Beacon gave."""
    assert call.status_callback, "the call asked for no status callback"
    call.status = status
    params = {"CallSid": call.sid, "AccountSid": call.account_sid, "From": call.from_, "To": call.to,
              "CallStatus": status, "Direction": "outbound-api", "ApiVersion": API_VERSION}
    if answered_by:
        params["AnsweredBy"] = answered_by
    if duration is not None:
        params["CallDuration"] = str(duration)
    parts = urlsplit(call.status_callback)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    code, _ = await post(path, params, {"X-Twilio-Signature": sign(auth_token, call.status_callback, params)})
    return code
