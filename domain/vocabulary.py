"""Beacon's words, each defined once: the bot, the registry, the API, OpenAPI and the console all use these.

Two words are easy to confuse:

- a **channel** is how a person is reached: ``sms``, ``whatsapp``, ``telegram``, ``voice`` (or the development
  ``simulator``). Identities, outbox rows, audiences and the API speak of channels.
- a **provider** is who carries the messages of one or more channels: ``twilio`` carries SMS,
  WhatsApp and voice calls, ``telegram`` carries Telegram. Webhooks, credentials and rate limits belong to providers.
"""

from __future__ import annotations

from enum import StrEnum


class LegalBasis(StrEnum):
    """Why an imported person may be written to before they consent (GDPR art. 6)."""

    CONSENT = "consent"  # invited only: nothing else until they reply YES
    VITAL_INTERESTS = "vital_interests"  # crisis messages too, until they refuse or are erased


class ChannelKind(StrEnum):
    """How a person is reached; stored on identities and outbox rows."""

    SMS = "sms"
    WHATSAPP = "whatsapp"
    TELEGRAM = "telegram"
    VOICE = "voice"  # phone calls (Twilio Programmable Voice): keypad answers, spoken prompts
    SIMULATOR = "simulator"


class ProviderName(StrEnum):
    """Who carries the messages of a channel."""

    TWILIO = "twilio"
    TELEGRAM = "telegram"
    SIMULATOR = "simulator"


class Need(StrEnum):
    """The kinds of help a person can ask for after a need-help check-in, in menu order."""

    MEDICAL = "medical"
    SHELTER = "shelter"
    FOOD = "food"
    WATER = "water"
    DOCUMENTS = "documents"
    EVACUATION = "evacuation"
    OTHER = "other"


class Role(StrEnum):
    """What a staff member or API token may do; ``admin`` may do everything."""

    ADMIN = "admin"
    RESPONDER = "responder"
    ANALYST = "analyst"
    AUDITOR = "auditor"
    PARTNER = "partner"  # an organisation fetching aggregates under one sharing arrangement (API tokens only)
    FIELDWORKER = "fieldworker"  # registers people met in person; sees only those, for 24 hours


class Answer(StrEnum):
    """A person's answer to a check-in."""

    SAFE = "safe"
    NEED_HELP = "need_help"


class CheckInStatus(StrEnum):
    """Where a recipient of a check-in stands: an answer, or none yet."""

    SAFE = "safe"
    NEED_HELP = "need_help"
    NO_REPLY = "no_reply"


class Delivery(StrEnum):
    """Delivery states of an outbox row, in the order they happen (a status callback's vocabulary)."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


class CaseStatus(StrEnum):
    """A need-help case's place in the queue."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"
