"""From what a person typed to what they meant, after :func:`domain.text.normalise`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from bot import texts
from bot.i18n import LANGUAGES, gettext_for
from domain.text import MAX_WORDS, normalise

# int() refuses numbers of more than 4300 digits; no menu or question comes near this many, so longer ones are
# read as this many nines.
MAX_DIGITS = 18


@dataclass(frozen=True, slots=True)
class Intent:
    """What one message means: a command, a number, or free text."""

    command: str | None = None  # JOIN START UPDATE MYDATA DELETE STOP HELP LANG SKIP SAFE NEED STATUS CODE YES NO
    number: int | None = None
    text: str = ""  # the message as typed, trimmed
    rest: str = ""  # normalised words after the command (STATUS <code>, CODE OFF)

    @property
    def skip(self) -> bool:
        return self.command == "SKIP" or self.number == 0


@cache
def keyword_table(language: str) -> dict[str, str]:
    """Normalised keyword (spaces removed) -> command, for English plus ``language``."""
    table: dict[str, str] = {}
    for lang in dict.fromkeys(("en", language)):
        for command, message in texts.KEYWORDS.items():
            for word in gettext_for(lang, message).split("|"):
                key = normalise(word).replace(" ", "")
                if key:
                    table.setdefault(key, command)
    return table


@cache
def any_language_table() -> dict[str, str]:
    """Keywords of every language, for people whose language is not known yet."""
    table: dict[str, str] = {}
    for lang in LANGUAGES:
        for key, command in keyword_table(lang).items():
            table.setdefault(key, command)
    return table


def _number(digits: str) -> int:
    """The value of a string of decimal digits, capped at :data:`MAX_DIGITS` nines."""
    significant = digits.lstrip("0") or "0"
    return int(significant) if len(significant) <= MAX_DIGITS else 10 ** MAX_DIGITS - 1


def _close(a: str, b: str) -> bool:
    """Optimal string alignment distance of at most one (one typo, swap included)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        first, second = diffs[0], diffs[-1]
        return len(diffs) == 2 and second == first + 1 and a[first] == b[second] and a[second] == b[first]
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _lookup(word: str, table: dict[str, str], fuzzy: bool) -> str | None:
    found = table.get(word)
    if found or not fuzzy or len(word) < 4:
        return found
    matches = {command for key, command in table.items() if len(key) >= 4 and _close(word, key)}
    return matches.pop() if len(matches) == 1 else None


def classify(text: str, language: str | None, *, fuzzy: bool = True) -> Intent:
    """Read one message; ``fuzzy`` allows one typo in command words of four letters or more."""
    trimmed = text.strip()
    words = normalise(trimmed).split()
    if not words:
        return Intent(text=trimmed)
    # isdecimal(), not isdigit(): a digit without a decimal value (Kharoshthi, Brahmi numbers ...) is refused by int().
    if len(words) == 1 and words[0].isdecimal():
        return Intent(number=_number(words[0]), text=trimmed)
    table = keyword_table(language) if language else any_language_table()
    for size in range(min(len(words), MAX_WORDS), 1, -1):
        command = table.get("".join(words[:size]))
        if command:
            return Intent(command=command, text=trimmed, rest=" ".join(words[size:]))
    command = _lookup(words[0], table, fuzzy and len(words) <= 2)
    if command:
        return Intent(command=command, text=trimmed, rest=" ".join(words[1:]))
    return Intent(text=trimmed)
