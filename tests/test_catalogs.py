"""The catalogs: every sentence of bot/texts.py, in every language, complete, well-formed and short enough."""

from __future__ import annotations

import re
from string import Formatter

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from bot import texts
from bot.i18n import LANGUAGES, LOCALES, gettext_for
from channels.telegram import COMMANDS as telegram_commands
from domain.areas import Gazetteer
from domain.segments import segments
from domain.text import normalise

OPERATOR = "Red Crescent Tripoli Team"
assert len(OPERATOR) == 25
TRANSLATED = [language for language in LANGUAGES if language != "en"]
# Every message id of texts.py: the sentences by name, and the keyword lists.
MESSAGES: dict[str, str] = {name: value for name, value in vars(texts).items()
                            if name.isupper() and isinstance(value, str)}
MESSAGES.update({f"KEYWORDS[{command}]": words for command, words in texts.KEYWORDS.items()})
# The Telegram command menu's descriptions are catalog entries too.
MESSAGES.update({f"telegram /{command}": description for command, description in telegram_commands})
SENTENCES = {name: message for name, message in MESSAGES.items() if not name.startswith("KEYWORDS")}
# The English command words a sentence may mention: the first English keyword of each command.
COMMAND_WORDS = {command: words.split("|")[0] for command, words in texts.KEYWORDS.items()}


def catalog(language: str) -> Catalog:
    path = LOCALES / language / "LC_MESSAGES" / "beacon.po"
    with path.open("rb") as fh:
        return read_po(fh, locale=language)


def placeholders(text: str) -> list[str]:
    return sorted(name for _, name, _, _ in Formatter().parse(text) if name is not None)


def params(language: str) -> dict[str, object]:
    """Realistic values for every placeholder, as the bot fills them in ``language``."""
    gazetteer = Gazetteer.load()
    menu = "\n".join(f"{n} {gazetteer.areas[a].name(language)}" for n, a in enumerate(gazetteer.top_level, 1))
    return {"operator": OPERATOR, "months": 24, "days": 30, "menu": menu, "code": "K7Q2M9",
            "name": gettext_for(language, texts.RELATIVE), "time": "2026-11-25 14:05",
            "option": gazetteer.areas["tripoli-centre"].name(language), "number": 9,
            "minutes": 10, "keyword": "JOIN AIR1", "link": "https://beacon.example.org/join/invited/" + "x" * 24}


def rendered(language: str, message: str) -> str:
    text = gettext_for(language, message)
    return text.format(**params(language)) if placeholders(message) else text


def mentions(text: str, word: str) -> bool:
    """Whether ``word`` appears in ``text`` as a whole word (case, accents and marks ignored)."""
    return re.search(rf"(?<!\w){re.escape(normalise(word))}(?!\w)", normalise(text)) is not None


# --------------------------------------------------------------------------- completeness and form

def test_template_lists_exactly_the_messages_of_the_code() -> None:
    with (LOCALES / "beacon.pot").open("rb") as fh:
        template = read_po(fh)
    assert {m.id for m in template if m.id} == set(MESSAGES.values())


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated(language: str) -> None:
    entries = catalog(language)
    assert {m.id for m in entries if m.id} == set(MESSAGES.values()), "catalog out of step with the template"
    for name, message in MESSAGES.items():
        entry = entries.get(message)
        assert entry is not None and entry.string and entry.string.strip(), (language, name)
        assert not entry.fuzzy, (language, name)
        assert gettext_for(language, message) == entry.string


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_are_the_message_ids(language: str) -> None:
    for name, message in MESSAGES.items():
        translation = gettext_for(language, message)
        assert placeholders(translation) == placeholders(message), (language, name, translation)
        rendered(language, message)  # no stray brace: formatting works


@pytest.mark.parametrize("language", TRANSLATED)
def test_catalog_header_says_whether_a_native_speaker_reviewed_it(language: str) -> None:
    text = (LOCALES / language / "LC_MESSAGES" / "beacon.po").read_text(encoding="utf-8")
    header = text.split('msgid ""\nmsgstr ""\n', 1)[1].split("\n\n", 1)[0]
    fields = dict(line.strip('"').removesuffix("\\n").split(": ", 1) for line in header.splitlines()
                  if line.startswith('"') and ": " in line)
    assert fields.get("X-Native-Review", "").strip(), f"{language}: no X-Native-Review header"


def test_keyword_entries_are_word_lists() -> None:
    for language in LANGUAGES:
        for command, message in texts.KEYWORDS.items():
            words = gettext_for(language, message).split("|")
            assert all(w and w == w.strip() and "{" not in w for w in words), (language, command, words)


# --------------------------------------------------------------------------- length

@pytest.mark.parametrize("language", LANGUAGES)
def test_every_sentence_fits_three_sms_segments(language: str) -> None:
    for name, message in SENTENCES.items():
        count = segments(rendered(language, message))
        assert count.segments <= 3, (language, name, count)


@pytest.mark.parametrize("language", TRANSLATED)
def test_one_segment_in_english_and_gsm7_stays_one_segment(language: str) -> None:
    for name, message in SENTENCES.items():
        english, translation = segments(rendered("en", message)), segments(rendered(language, message))
        if english.segments == 1 and translation.encoding == "GSM-7":
            assert translation.segments == 1, (language, name, translation)


# --------------------------------------------------------------------------- command words in sentences

def _mentioned(message: str) -> list[str]:
    return [command for command, word in COMMAND_WORDS.items() if re.search(rf"\b{word}\b", message)]


def test_the_english_sentences_mention_the_commands_they_explain() -> None:
    assert _mentioned(texts.CONSENT_QUESTION) == ["MYDATA", "DELETE", "YES", "NO"]
    assert set(_mentioned(texts.HELP)) == {"UPDATE", "MYDATA", "DELETE", "LANG", "STOP", "START", "HELP"}
    assert _mentioned(texts.DELETE_CONFIRM) == ["YES", "NO"]
    assert _mentioned(texts.REGISTERED) == ["HELP"]
    assert _mentioned(texts.NOT_UNDERSTOOD) == ["HELP"]
    assert _mentioned(texts.PROFILE_DONE) == ["UPDATE", "MYDATA"]


@pytest.mark.parametrize("language", TRANSLATED)
def test_sentences_name_commands_by_the_languages_first_keyword(language: str) -> None:
    """A translated sentence that tells people what to text uses the word the bot shows first for that command
    (its first keyword in this language), or the English word; either one works when typed."""
    checked = 0
    for name, message in SENTENCES.items():
        translation = gettext_for(language, message)
        for command in _mentioned(message):
            first = gettext_for(language, texts.KEYWORDS[command]).split("|")[0]
            assert mentions(translation, first) or mentions(translation, COMMAND_WORDS[command]), (
                f"{language} {name}: mentions {command} neither as {first!r} nor as {COMMAND_WORDS[command]!r}: "
                f"{translation}")
            checked += 1
    assert checked >= 25


@pytest.mark.parametrize("language", TRANSLATED)
def test_consent_question_names_mydata_delete_yes_and_no(language: str) -> None:
    question = gettext_for(language, texts.CONSENT_QUESTION)
    for command in ("MYDATA", "DELETE", "YES", "NO"):
        own = gettext_for(language, texts.KEYWORDS[command]).split("|")[0]
        assert mentions(question, own) or mentions(question, command), (language, command, question)
    # the numbers of the answers are there too
    assert "1" in normalise(question) and "2" in normalise(question)


def test_the_word_check_can_tell_words_apart() -> None:
    assert mentions("Envoyez AIDE pour voir", "aide")
    assert not mentions("Envoyez AIDER pour voir", "AIDE")
    assert mentions("أرسل «مساعدة» لمعرفة", "مساعدة")
    assert not mentions("Reply 1 YES or 2 NO.", "NON")
