"""Segment counting at the edges carriers care about."""

from __future__ import annotations

import pytest

from domain.segments import SegmentCount, segments

EMOJI = "\U0001f600"  # one code point, a UTF-16 surrogate pair
ARABIC = "مرحبا"  # 5 letters, none in GSM-7

CASES: list[tuple[str, str, SegmentCount]] = [
    ("empty", "", SegmentCount("GSM-7", 0, 1)),
    ("one char", "a", SegmentCount("GSM-7", 1, 1)),
    ("160 GSM", "a" * 160, SegmentCount("GSM-7", 160, 1)),
    ("161 GSM", "a" * 161, SegmentCount("GSM-7", 161, 2)),
    ("306 GSM fills two parts", "a" * 306, SegmentCount("GSM-7", 306, 2)),
    ("307 GSM", "a" * 307, SegmentCount("GSM-7", 307, 3)),
    ("Greek capitals and accents are GSM", "ΔΦΓΛΩΠΨΣΘΞ éèÇÅ", SegmentCount("GSM-7", 15, 1)),
    ("extension char is 2 septets", "€", SegmentCount("GSM-7", 2, 1)),
    ("all extension chars", "^{}\\[~]|€\f", SegmentCount("GSM-7", 20, 1)),
    ("80 euro = 160 septets", "€" * 80, SegmentCount("GSM-7", 160, 1)),
    ("159 + extension = 161 septets", "a" * 159 + "€", SegmentCount("GSM-7", 161, 2)),
    ("158 + extension = 160 septets", "a" * 158 + "€", SegmentCount("GSM-7", 160, 1)),
    (
        "escape pair straddling 153 moves to next part",
        "a" * 152 + "€" + "a" * 152,
        SegmentCount("GSM-7", 306, 3),
    ),
    ("escape pair ending exactly at 153", "a" * 151 + "€" + "a" * 153, SegmentCount("GSM-7", 306, 2)),
    ("81 euro", "€" * 81, SegmentCount("GSM-7", 162, 2)),
    ("lower-case c cedilla is not GSM", "ç", SegmentCount("UCS-2", 1, 1)),
    ("tab is not GSM", "a\tb", SegmentCount("UCS-2", 3, 1)),
    ("70 UCS-2", "ç" * 70, SegmentCount("UCS-2", 70, 1)),
    ("71 UCS-2", "ç" * 71, SegmentCount("UCS-2", 71, 2)),
    ("134 UCS-2 fills two parts", "ç" * 134, SegmentCount("UCS-2", 134, 2)),
    ("135 UCS-2", "ç" * 135, SegmentCount("UCS-2", 135, 3)),
    ("emoji is two code units", EMOJI, SegmentCount("UCS-2", 2, 1)),
    ("35 emoji = 70 units", EMOJI * 35, SegmentCount("UCS-2", 70, 1)),
    ("35 emoji + 1", EMOJI * 35 + "a", SegmentCount("UCS-2", 71, 2)),
    ("surrogate pair straddling 67 moves", "a" * 66 + EMOJI + "a" * 66, SegmentCount("UCS-2", 134, 3)),
    ("surrogate pair ending exactly at 67", "a" * 65 + EMOJI + "a" * 67, SegmentCount("UCS-2", 134, 2)),
    ("Arabic", ARABIC, SegmentCount("UCS-2", 5, 1)),
    ("70 Arabic letters", ARABIC * 14, SegmentCount("UCS-2", 70, 1)),
    ("71 Arabic letters", ARABIC * 14 + "م", SegmentCount("UCS-2", 71, 2)),
    ("one emoji turns GSM text into UCS-2", "a" * 69 + EMOJI, SegmentCount("UCS-2", 71, 2)),
    ("extension char in UCS-2 is one unit", "€" * 70 + ARABIC[0], SegmentCount("UCS-2", 71, 2)),
    ("mixed Arabic and Latin", "Help مرحبا 123", SegmentCount("UCS-2", 14, 1)),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_segments(text: str, expected: SegmentCount) -> None:
    assert segments(text) == expected


def test_result_is_frozen() -> None:
    count = segments("hi")
    with pytest.raises(AttributeError):
        count.segments = 2  # type: ignore[misc]
