"""The simulator: a phone in a web page, for development and demonstrations.

It has the same shape as the real channels. Inbound messages come as JSON
``{"from": "+2348012345678", "text": "JOIN"}``; sent messages are kept in
memory per number so the page can show them.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict, deque
from datetime import UTC, datetime

import phonenumbers

from channels.base import Inbound, Outbound, Received, Sent, StatusUpdate, WebhookCall, WebhookRejected
from domain.vocabulary import ChannelKind, ProviderName

MAX_BODY = 16 * 1024
KEEP = 50  # messages kept per number


def parse_phone(raw: object) -> str:
    """A phone number in E.164, or WebhookRejected(400)."""
    if not isinstance(raw, str):
        raise WebhookRejected(400, "'from' must be a phone number with country code, e.g. +2348012345678")
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise WebhookRejected(400, "'from' must be a phone number with country code, e.g. +2348012345678") from None
    if not phonenumbers.is_possible_number(number):
        raise WebhookRejected(400, "'from' is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class SimulatorChannel:
    """A channel whose provider is this process."""

    name: ProviderName = ProviderName.SIMULATOR
    channels: frozenset[ChannelKind] = frozenset({ChannelKind.SIMULATOR})
    webhook_paths: tuple[str, ...] = ("/simulator/messages",)
    max_body = MAX_BODY

    def __init__(self) -> None:
        self.sent: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=KEEP))

    async def start(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def receive(self, call: WebhookCall) -> Received:
        """Parse ``{"from", "text"}``."""
        try:
            data = json.loads(call.body)
        except ValueError:
            raise WebhookRejected(400, "body must be JSON: {\"from\": \"+...\", \"text\": \"...\"}") from None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise WebhookRejected(400, "'text' must be a string")
        address = parse_phone(data.get("from"))
        message = Inbound(channel=ChannelKind.SIMULATOR, address=address, text=data["text"][:2000],
                          provider_id=uuid.uuid4().hex, received_at=datetime.now(UTC))
        return Received(messages=[message])

    async def acknowledge(self, message: Inbound) -> None:
        """Nothing to acknowledge."""

    async def send(self, message: Outbound) -> Sent:
        """Keep the message for the page; it is delivered at once."""
        self.sent[message.address].append(message.text)
        return Sent(provider_id=f"sim-{message.outbox_id}", status="delivered")

    def fallback_for(self, update: StatusUpdate, original: Outbound) -> Outbound | None:
        """The simulator never fails a delivery."""
        return None
