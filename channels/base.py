"""The one shape every channel has.

A channel module (``twilio``, ``telegram``, ``simulator``) turns a provider's
webhook call (a :class:`WebhookCall`, whatever web framework received it) into
:class:`Inbound` messages and :class:`StatusUpdate` records, and sends an
:class:`Outbound`. Only the service writes to storage; channels return data and
raise :class:`WebhookRejected` or :class:`SendError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from domain.vocabulary import ChannelKind, ProviderName


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message from a person, as parsed from a provider webhook."""

    channel: ChannelKind
    address: str  # E.164 phone number, or the Telegram chat id in decimal
    text: str
    provider_id: str  # MessageSid, "update:<update_id>", ... unique per channel provider
    received_at: datetime
    language_hint: str | None = None  # Telegram's language_code
    opt_out: str | None = None  # Twilio OptOutType: STOP | START | HELP
    contact_phone: str | None = None  # a phone number the Telegram user shared as their own
    callback_id: str | None = None  # Telegram callback_query id, answered after storage
    payload: str | None = None  # Telegram /start deep-link payload


@dataclass(frozen=True, slots=True)
class Button:
    """A quick answer shown as a button where the channel has them (Telegram)."""

    label: str
    data: str  # what the button sends back, e.g. "1"


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message to send to one address."""

    outbox_id: int
    channel: str
    address: str
    text: str
    buttons: tuple[Button, ...] = ()
    contact_button: str | None = None  # Telegram: the "share my phone number" button's label; None: no such button
    template: bool = False  # WhatsApp: send the approved template instead of session text


@dataclass(frozen=True, slots=True)
class WebhookCall:
    """One webhook call as the web layer received it, body read in full and within the provider's limit."""

    path: str
    url: str  # the public URL the provider called, query included: what a signature covers
    headers: Mapping[str, str]  # looked up without regard to case
    body: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", CIMultiDictProxy(CIMultiDict(self.headers)))


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A delivery report for a message we sent."""

    provider_id: str
    status: str  # a Delivery state, or the provider's own word when it has no equivalent
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class Sent:
    """What the provider said when it accepted a message."""

    provider_id: str
    status: str = "sent"


@dataclass(frozen=True, slots=True)
class Received:
    """The parsed content of one webhook call and the body to answer it with."""

    messages: list[Inbound] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    ack_body: str = ""
    ack_content_type: str = "text/plain"


class WebhookRejected(Exception):
    """A webhook that must not be processed: bad signature (403), too large (413), malformed (400)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SendError(Exception):
    """A send that failed; ``permanent`` errors are never retried.

    ``unreachable`` marks the identity as not reachable (invalid number, bot
    blocked); ``opted_out`` records a carrier-level opt-out (Twilio 21610).
    """

    def __init__(
        self,
        code: str,
        reason: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        unreachable: bool = False,
        opted_out: bool = False,
    ) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after
        self.unreachable = unreachable
        self.opted_out = opted_out


class Provider(Protocol):
    """The interface every provider module implements."""

    name: ProviderName
    channels: frozenset[ChannelKind]  # the channels it carries
    webhook_paths: tuple[str, ...]  # the URL paths it answers
    max_body: int  # bytes; the web layer refuses a longer webhook body with 413

    async def start(self) -> None:
        """Open client sessions; called once when the app starts."""

    async def close(self) -> None:
        """Release client sessions."""

    async def receive(self, call: WebhookCall) -> Received:
        """Verify and parse one webhook call; raise WebhookRejected when it must not be processed."""

    async def acknowledge(self, message: Inbound) -> None:
        """Provider-side follow-up once a message is stored (Telegram answers callback queries)."""

    async def send(self, message: Outbound) -> Sent:
        """Send one message; raise SendError on failure."""

    def fallback_for(self, update: StatusUpdate, original: Outbound) -> Outbound | None:
        """A replacement message when a delivery failure calls for one (WhatsApp 63016 -> template or SMS)."""
