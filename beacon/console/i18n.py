"""The console's own catalogs (domain ``console``), compiled in memory like the bot's."""

from __future__ import annotations

import gettext
from collections.abc import Callable
from functools import cache
from pathlib import Path

from bot.i18n import RTL_LANGUAGES, load_catalog

LOCALES = Path(__file__).parent / "locales"
DOMAIN = "console"
# The console's languages, each named in itself.
CONSOLE_LANGUAGES: dict[str, str] = {"en": "English", "fr": "Français", "ar": "العربية"}


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The console catalog of one language."""
    return load_catalog(LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po", language)


def gettext_callables(language: str) -> tuple[Callable[[str], str], Callable[[str, str, int], str]]:
    """``_`` and ``ngettext`` (which fills in ``%(num)d``) for templates, bound to one language."""
    found = translations(language)

    def ngettext(singular: str, plural: str, n: int) -> str:
        return found.ngettext(singular, plural, n) % {"num": n}

    return found.gettext, ngettext


def is_rtl(language: str) -> bool:
    """Whether a language is written right to left."""
    return language in RTL_LANGUAGES
