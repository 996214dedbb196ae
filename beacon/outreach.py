"""The ways to reach an outreach source: its short link, QR code, Telegram deep link and SMS keyword."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import segno

from beacon.context import Beacon
from channels.telegram import TelegramChannel
from domain.vocabulary import ProviderName
from registry.sources import Source


@dataclass(frozen=True)
class WaysIn:
    """Everything a poster or an admin needs to point people at one source."""

    link: str  # https://beacon.example.org/join/CODE
    keyword: str  # JOIN CODE
    sms_number: str | None  # the number to text, when an SMS number is configured
    telegram: str | None  # https://t.me/<bot>?start=CODE, when Telegram is configured

    def as_json(self) -> dict[str, Any]:
        """The API's view."""
        return {"link": self.link, "keyword": self.keyword, "sms_number": self.sms_number,
                "telegram_link": self.telegram}


def ways_in(beacon: Beacon, source: Source) -> WaysIn:
    """The link, keyword, number and deep link of ``source`` in this deployment."""
    settings = beacon.settings
    twilio = settings.twilio
    number = twilio.sms_from if twilio is not None and twilio.sms_from else None
    channel = beacon.providers.get(ProviderName.TELEGRAM)
    username = channel.username if isinstance(channel, TelegramChannel) else None
    telegram = f"https://t.me/{username}?start={source.code}" if username else None
    return WaysIn(f"{settings.public_url}/join/{source.code}", f"JOIN {source.code}", number, telegram)


def qr_svg(link: str) -> str:
    """The QR code of ``link`` as an inline SVG element (no XML declaration), scaled by the page's CSS."""
    out = io.BytesIO()
    segno.make(link, error="m").save(out, kind="svg", xmldecl=False, svgns=True, scale=1, border=4,
                                     omitsize=True, svgclass="qr", lineclass=None)
    return out.getvalue().decode()


def qr_png(link: str) -> bytes:
    """The QR code of ``link`` as a PNG, large enough to print."""
    out = io.BytesIO()
    segno.make(link, error="m").save(out, kind="png", scale=10, border=4)
    return out.getvalue()
