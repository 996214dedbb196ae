"""SMS segment counting, the way carriers (and Twilio's billing) split a message.

A single SMS carries 140 octets: 160 GSM-7 septets or 70 UCS-2 code units.
A longer message is sent as concatenated parts whose 6-octet User Data Header
leaves 153 septets or 67 code units per part. Two-septet GSM escape sequences
(extension-table characters) and UTF-16 surrogate pairs are never cut across
parts, so a part can end one unit short and a message can need one segment
more than the plain ``ceil(n / 153)`` suggests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 default alphabet (one septet each). Only characters that map to a
# printable code: ESC (0x1B) is not text, and lower-case "ç" is not in the table.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: ESC + code, two septets each.
GSM_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


@dataclass(frozen=True, slots=True)
class SegmentCount:
    """How a text is encoded and how many SMS segments it is billed as."""

    encoding: Encoding
    characters: int  # GSM-7 septets, or UTF-16 code units for UCS-2
    segments: int


def _is_gsm(text: str) -> bool:
    return all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text)


def _units(text: str, encoding: Encoding) -> list[int]:
    """The size of each character in the encoding's units; an escape pair or surrogate pair is one item."""
    if encoding == "GSM-7":
        return [2 if ch in GSM_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _pack(units: list[int], capacity: int) -> int:
    """Parts needed when items are packed greedily and no item is split across parts."""
    parts, free = 1, capacity
    for size in units:
        if size > free:
            parts, free = parts + 1, capacity
        free -= size
    return parts


def segments(text: str) -> SegmentCount:
    """Count the segments ``text`` is sent as.

    GSM-7 is used when every character is in the GSM 03.38 default alphabet or
    its extension table; otherwise the whole message is UCS-2. An empty text is
    one (empty) segment.
    """
    encoding: Encoding = "GSM-7" if _is_gsm(text) else "UCS-2"
    single, part = (GSM_SINGLE, GSM_PART) if encoding == "GSM-7" else (UCS2_SINGLE, UCS2_PART)
    units = _units(text, encoding)
    total = sum(units)
    count = 1 if total <= single else _pack(units, part)
    return SegmentCount(encoding=encoding, characters=total, segments=count)
