"""What each provider needs to know: credentials, senders, endpoints and rates.

``beacon.config`` builds these from the environment; the providers never read it.
"""

from __future__ import annotations

from dataclasses import dataclass


class SettingsError(Exception):
    """Provider settings a provider cannot work with; the message is one line for the operator."""


@dataclass(frozen=True)
class TwilioSettings:
    """One Twilio account and its senders."""

    account_sid: str
    auth_token: str
    sms_from: str | None
    messaging_service_sid: str | None
    whatsapp_from: str | None
    api_base_url: str
    # messages per second per sender; None means the default for the sender type
    rate_per_second: float | None
    whatsapp_template_sid: str | None  # approved ContentSid for use outside the 24-hour window
    voice_from: str | None = None  # the number outbound calls come from; None: no outbound calls
    voice_calls_per_second: float = 1.0  # calls started per second from that number (Twilio's default CPS)


@dataclass(frozen=True)
class TelegramSettings:
    """One Telegram bot and the secret its webhook calls carry."""

    bot_token: str
    webhook_secret: str
    api_base_url: str
    rate_per_second: float  # overall; Telegram allows about 30
