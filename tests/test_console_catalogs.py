"""The console's catalogs: every text in the templates and code is translated, placeholders intact."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).parent.parent
CONSOLE = ROOT / "beacon" / "console"
PLACEHOLDER = re.compile(r"\{\w+\}|%\(\w+\)d")


def extracted() -> set[str]:
    """Message ids as `make catalogs` extracts them (the same mapping and keywords)."""
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "translate": (2,), "N_": None}
    found = set()
    for _, _, message, _, _ in extract_from_dir(str(CONSOLE), method_map, options, keywords=keywords):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


@pytest.mark.parametrize("language", ["fr", "ar"])
def test_every_console_text_is_translated(language: str) -> None:
    path = CONSOLE / "locales" / language / "LC_MESSAGES" / "console.po"
    catalog = read_po(path.open("rb"), locale=language)
    assert "X-Native-Review" in path.read_text(encoding="utf-8")
    translated = {}
    for message in catalog:
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), f"{language}: no translation for {key!r}"
        want = set(PLACEHOLDER.findall(key))
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) == want, (language, key, text)
        translated[key] = strings
    missing = extracted() - set(translated)
    assert not missing, f"{language}: run `make catalogs` and translate {sorted(missing)}"
