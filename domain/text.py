"""Canonical text for matching: the one normaliser every flow, channel and gazetteer uses.

Normalisation (NFKC, case folding, accents, Arabic letter variants, digits
of any script) happens once here.
"""

from __future__ import annotations

import unicodedata

# Letters people type interchangeably: Arabic-script variants (hamza forms, Persian/Urdu yeh and kaf), and the
# Turkish dotless ı ("hayır" is "HAYIR", whose case fold is "hayir").
_FOLD = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ی": "ي", "ې": "ي", "ک": "ك", "ة": "ه",
                       "ـ": None, "ı": "i"})
# Ethiopic digits one to nine (U+1369..U+1371) have a digit value but no decimal one.
_ETHIOPIC_DIGITS = range(0x1369, 0x1372)
# The longest keyword, in words ("نیاز به کمک"): phrases up to this length are looked up whole.
MAX_WORDS = 3
_PUNCTUATION_EDGES = " .,;:!?¡¿\"'«»()[]{}-_*#/\\|…،؛؟।"


def _strip_mark(base: str) -> bool:
    """Marks are dropped after Latin, Greek, Cyrillic and Arabic letters only: elsewhere they are letters."""
    code = ord(base)
    return code < 0x0530 or 0x0600 <= code <= 0x06FF or 0x0750 <= code <= 0x077F


def normalise(text: str) -> str:
    """Canonical form for matching: NFKC, casefold, no accents or invisible marks, ASCII digits, single spaces."""
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text).casefold())
    out: list[str] = []
    base = " "
    for char in decomposed:
        if unicodedata.category(char) == "Mn" and _strip_mark(base):
            continue
        if unicodedata.category(char) == "Cf":  # zero-width (non-)joiners and direction marks: invisible
            continue
        digit = unicodedata.decimal(char, None)
        if digit is None and ord(char) in _ETHIOPIC_DIGITS:
            digit = unicodedata.digit(char)
        if digit is not None:
            char = str(digit)
        elif not unicodedata.combining(char):
            base = char
        out.append(char)
    folded = unicodedata.normalize("NFC", "".join(out)).translate(_FOLD)
    words = (word.strip(_PUNCTUATION_EDGES) for word in folded.split())
    return " ".join(word for word in words if word)
