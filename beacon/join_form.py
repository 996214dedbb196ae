"""The web sign-up's answers: read from the form, checked the way the text conversation checks them.

Each step's page posts every answer given so far (hidden fields), so nothing is stored before the
code is verified; every post checks them all again, since a browser can send anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot import texts
from bot.countries import find_country, normalise_phone
from bot.i18n import LANGUAGES
from bot.profile import AGE_BANDS, GENDERS, MAX_HOUSEHOLD
from bot.state import Profile
from domain.areas import Gazetteer

# The optional fields in the order the text conversation asks them.
OPTIONAL = ("first_name", "nationality", "gender", "age_band", "household_size", "family_contact")
SHARING = ("share_family", "family_language")
CARRIED = ("lang", "consent", "area", *OPTIONAL, *SHARING)


@dataclass
class Answers:
    """What the person typed (kept as typed, to show it again) and what it means once checked."""

    typed: dict[str, str]
    profile: Profile = Profile()
    errors: dict[str, str] = field(default_factory=dict)  # field -> message id

    def hidden(self, *shown: str) -> list[tuple[str, str]]:
        """The answers the current page does not show, as hidden fields."""
        return [(name, value) for name, value in self.typed.items() if name not in shown and value]


def _name(value: str) -> str | None:
    name = " ".join(value.split())
    if len(name) > 40 or not any(ch.isalpha() for ch in name) or any(ch.isdigit() for ch in name) or "@" in name:
        return None
    return name


def _household(value: str) -> int | None:
    digits = value.translate(_ASCII_DIGITS).strip()
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 3:
        return None
    return int(digits) if 1 <= int(digits) <= MAX_HOUSEHOLD else None


_ASCII_DIGITS = {ord(ch): str(int(ch)) for ch in "٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹०१२३४५६७८९০১২৩৪৫৬৭৮৯"}


def phone(value: str) -> str | None:
    """A phone number typed with its country code, in E.164."""
    cleaned = "".join(ch for ch in value.translate(_ASCII_DIGITS) if ch.isdecimal() or ch == "+")
    if not cleaned.startswith("+"):
        return None
    return normalise_phone(cleaned, None)


def read(form: Mapping[str, Any], gazetteer: Gazetteer, *, family_sharing: bool) -> Answers:
    """Every answer in ``form`` checked; ``errors`` names the fields at fault."""
    typed = {name: str(form.get(name, "")).strip()[:200] for name in CARRIED}
    answers = Answers(typed)
    errors = answers.errors
    language = typed["lang"] if typed["lang"] in LANGUAGES else None
    if language is None:
        errors["lang"] = texts.WEB_FORM_EXPIRED
    area = gazetteer.areas.get(typed["area"]) if typed["area"] else None
    values: dict[str, Any] = {"language": language, "area_id": area.id if area else None}
    checks = {
        "first_name": _name,
        "nationality": find_country,
        "gender": lambda v: v if v in GENDERS else None,
        "age_band": lambda v: v if v in AGE_BANDS else None,
        "household_size": _household,
        "family_contact": phone,
    }
    for name, check in checks.items():
        if typed[name]:
            value = check(typed[name])
            if value is None:
                errors[name] = texts.WEB_CHECK
            values[name] = value
    if family_sharing and values.get("family_contact") and typed["share_family"] == "yes":
        values["share_family"] = True
        contact_language = typed["family_language"] or language
        values["family_language"] = contact_language if contact_language in LANGUAGES else language
    answers.profile = Profile(**values)
    return answers
