"""Countries: nationality names in every language, and a language guess from a phone number."""

from __future__ import annotations

from functools import cache

import phonenumbers
from babel import Locale
from babel.languages import get_official_languages

from bot.i18n import LANGUAGES
from domain.text import normalise


@cache
def _names() -> dict[str, str]:
    """Normalised country name (any supported language) or ISO code -> ISO 3166 alpha-2 code."""
    table: dict[str, str] = {}
    for language in LANGUAGES:
        for code, name in Locale.parse(language).territories.items():
            if len(code) == 2 and code.isalpha() and code not in ("ZZ", "EU", "EZ", "UN", "QO"):
                table.setdefault(normalise(name).replace(" ", ""), code)
                table.setdefault(code.lower(), code)
    return table


@cache
def _language_names() -> dict[str, str]:
    """Normalised language name (in any supported language), own name or ISO 639-1 code -> supported code."""
    table: dict[str, str] = {code: code for code in LANGUAGES}
    for code, own in LANGUAGES.items():
        table.setdefault(normalise(own).replace(" ", ""), code)
    for shown_in in LANGUAGES:
        names = Locale.parse(shown_in).languages
        for code in LANGUAGES:
            if names.get(code):
                table.setdefault(normalise(names[code]).replace(" ", ""), code)
    return table


def find_language(text: str) -> str | None:
    """The supported language a code or name (in any supported language) means, or None."""
    return _language_names().get(normalise(text).replace(" ", "").replace("_", "-").split("-")[0])


def find_country(text: str) -> str | None:
    """The ISO code of the country a person named, or None."""
    return _names().get(normalise(text).replace(" ", ""))


def country_name(code: str, language: str) -> str:
    """A country's name in ``language``."""
    return Locale.parse(language).territories.get(code) or code


def phone_region(address: str) -> str | None:
    """The ISO region of an E.164 number, or None for anything else."""
    try:
        number = phonenumbers.parse(address, None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.region_code_for_number(number)


def suggest_language(address: str, hint: str | None, default: str) -> str:
    """The language to offer first: the channel's hint, else the phone's country, else the default."""
    if hint:
        base = hint.replace("_", "-").split("-")[0].lower()
        if base in LANGUAGES:
            return base
    region = phone_region(address)
    if region:
        for language in get_official_languages(region, de_facto=True):
            base = language.split("_")[0]
            if base in LANGUAGES:
                return base
    return default


def normalise_phone(text: str, region: str | None) -> str | None:
    """A valid phone number in E.164, read in the person's own region when it has no country code."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
