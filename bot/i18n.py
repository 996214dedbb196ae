"""Catalogs: the bot's texts in every supported language.

Catalogs are gettext ``.po`` files under ``bot/locales``; Babel compiles them
to gettext's binary form in memory when first used, so a ``.po`` edit can
never be shadowed by a stale ``.mo``.
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES = Path(__file__).parent / "locales"
DOMAIN = "beacon"

# The supported languages with their own names, in menu order.
LANGUAGES: dict[str, str] = {
    "en": "English",
    "fr": "Français",
    "es": "Español",
    "pt": "Português",
    "ar": "العربية",
    "fa": "فارسی",
    "ur": "اردو",
    "ru": "Русский",
    "uk": "Українська",
    "tr": "Türkçe",
    "hi": "हिन्दी",
    "bn": "বাংলা",
    "ne": "नेपाली",
    "tl": "Tagalog",
    "sw": "Kiswahili",
    "am": "አማርኛ",
}
RTL_LANGUAGES = frozenset({"ar", "fa", "ur"})


def load_catalog(path: Path, language: str) -> gettext.NullTranslations:
    """Compile one ``.po`` file in memory (English message ids when there is none)."""
    if language == "en" or not path.is_file():
        return gettext.NullTranslations()
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog of one language (English message ids when there is none)."""
    return load_catalog(LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po", language)


def gettext_for(language: str, message: str) -> str:
    """Translate one message id into ``language``."""
    return translations(language).gettext(message)


def render(language: str, message: str, **params: object) -> str:
    """Translate and fill in the placeholders of one message."""
    text = gettext_for(language, message)
    return text.format(**params) if params else text
