"""From what a person typed to what they meant: `bot.keywords.normalise` and `classify`, as tables.

The keyword lists come from the catalogs, so these tests also check the catalogs' keyword entries: every
language's own words reach their command and no word means two things in one language.
"""

from __future__ import annotations

import pytest

from bot import texts
from bot.i18n import LANGUAGES, gettext_for
from bot.keywords import Intent, any_language_table, classify, keyword_table
from domain.text import normalise

# The everyday word for "help" in every language: it is the first HELP keyword, and never a NEED one.
EVERYDAY_HELP = {
    "en": "HELP", "fr": "AIDE", "es": "AYUDA", "pt": "AJUDA", "ar": "مساعدة", "fa": "کمک", "ur": "مدد",
    "ru": "ПОМОЩЬ", "uk": "ДОПОМОГА", "tr": "YARDIM", "hi": "मदद", "bn": "সাহায্য", "ne": "मद्दत",
    "tl": "TULONG", "sw": "MSAADA", "am": "እርዳታ",
}


def words(language: str, command: str) -> list[str]:
    """The keywords of ``command`` in ``language``'s catalog, as written there."""
    return gettext_for(language, texts.KEYWORDS[command]).split("|")


# --------------------------------------------------------------------------- normalise

@pytest.mark.parametrize(("typed", "expected"), [
    # case, spaces, punctuation at word edges
    ("STOP", "stop"),
    ("  Stop  ", "stop"),
    ("Stop!!", "stop"),
    ("¿Ayuda?", "ayuda"),
    ("«معلومات»", "معلومات"),
    ("Mes   Données", "mes donnees"),
    ("mes\tdonnées\n", "mes donnees"),
    ("(1)", "1"),
    ("1.", "1"),
    ("STATUS  K7Q2-M9", "status k7q2-m9"),  # inner punctuation is kept
    # accents
    ("DÉMARRER", "demarrer"),
    ("Sí", "si"),
    ("NÃO", "nao"),
    ("GÜNCELLE", "guncelle"),
    # Turkish dotted and dotless i fold together
    ("İMDAT", "imdat"),
    ("hayır", "hayir"),
    ("HAYIR", "hayir"),
    # NFKC: full-width letters and digits, ligatures
    ("ＳＴＯＰ", "stop"),
    ("Ｊｏｉｎ", "join"),
    ("１２", "12"),
    ("ﬁn", "fin"),
    # digits of other scripts are digits
    ("١٢٣", "123"),  # Arabic-Indic
    ("۴۵", "45"),  # Persian
    ("३", "3"),  # Devanagari
    ("৪", "4"),  # Bengali
    ("፫", "3"),  # Ethiopic
    # Arabic: vowel marks, hamza forms, teh marbuta and tatweel fold away
    ("مُسَاعَدَة", "مساعده"),
    ("أحتاج", "احتاج"),
    ("نعـــم", "نعم"),
    # Persian yeh and kaf are the Arabic ones
    ("کمک", "كمك"),
    # invisible marks: direction marks, zero-width non-joiner
    ("\u200fنعم\u200f", "نعم"),
    ("پاک\u200cکردن", "پاككردن"),
    # marks are letters in Indic and Ethiopic scripts: they are kept
    ("हाँ", "हाँ"),
    ("মুছুন", "মুছুন"),
    ("", ""),
    ("   ", ""),
])
def test_normalise(typed: str, expected: str) -> None:
    assert normalise(typed) == expected


def test_normalise_is_idempotent_on_every_keyword() -> None:
    for language in LANGUAGES:
        for command in texts.KEYWORDS:
            for word in words(language, command):
                once = normalise(word)
                assert once and normalise(once) == once, (language, command, word)


# --------------------------------------------------------------------------- classify

# typed, language, fuzzy, expected command, expected number, expected rest
CLASSIFY = [
    # whole words only: the command is the first word, a word that merely contains it is not the command
    ("end", "en", True, "STOP", None, ""),
    ("End.", "en", True, "STOP", None, ""),
    ("friend", "en", True, None, None, ""),
    ("weekend", "en", True, None, None, ""),
    ("attend", "en", True, None, None, ""),
    ("endless", "en", True, None, None, ""),
    ("stopped", "en", True, None, None, ""),  # decided: a past tense is not the command
    ("unstoppable", "en", True, None, None, ""),
    ("helpful", "en", True, None, None, ""),
    ("please stop", "en", True, None, None, ""),
    ("stop please", "en", True, "STOP", None, "please"),
    ("STOPALL", "en", True, "STOP", None, ""),
    ("STOP ALL", "en", True, "STOP", None, ""),  # a two-word keyword is read whole
    ("STOP now", "en", True, "STOP", None, "now"),
    # one typo in a word of four letters or more
    ("JION", "en", True, "JOIN", None, ""),
    ("HLEP", "en", True, "HELP", None, ""),
    ("DELTE", "en", True, "DELETE", None, ""),
    ("SOTP", "en", True, "STOP", None, ""),
    ("UPDAET", "en", True, "UPDATE", None, ""),
    ("myddata", "en", True, "MYDATA", None, ""),
    ("AYDUA", "es", True, "HELP", None, ""),
    ("SUPRIMER", "fr", True, "DELETE", None, ""),
    # ... but two typos, or a typo in a three-letter word, is nothing
    ("HLPE", "en", True, None, None, ""),
    ("DLETEE", "en", True, None, None, ""),
    ("EDN", "en", True, None, None, ""),
    ("HEP", "en", True, None, None, ""),  # a three-letter word is not a typo of a four-letter one
    ("STP", "en", True, None, None, ""),
    ("PELH", "en", True, None, None, ""),  # a swap counts as one typo only when the letters are neighbours
    ("YSE", "en", True, None, None, ""),
    ("SKPI", "en", True, "SKIP", None, ""),
    ("OUU", "fr", True, None, None, ""),
    # ... nor in a longer sentence
    ("JION the group today", "en", True, None, None, ""),
    # ... nor where free text is expected (fuzzy off): exact words still work there
    ("JION", "en", False, None, None, ""),
    ("HLEP", "en", False, None, None, ""),
    ("DELTE", "en", False, None, None, ""),
    ("HELP", "en", False, "HELP", None, ""),
    ("mes données", "fr", False, "MYDATA", None, ""),
    # case, accents, spacing, full width
    ("help", "en", True, "HELP", None, ""),
    ("  HeLp  ", "en", True, "HELP", None, ""),
    ("ＨＥＬＰ", "en", True, "HELP", None, ""),
    ("Mes données", "fr", True, "MYDATA", None, ""),
    ("MESDONNEES", "fr", True, "MYDATA", None, ""),
    ("my  data", "en", True, "MYDATA", None, ""),
    ("arret", "fr", True, "STOP", None, ""),
    ("ARRÊT!", "fr", True, "STOP", None, ""),
    ("si", "es", True, "YES", None, ""),
    ("nao", "pt", True, "NO", None, ""),
    ("hayır", "tr", True, "NO", None, ""),
    ("yardım", "tr", True, "HELP", None, ""),
    ("نعم", "ar", True, "YES", None, ""),
    ("\u200fنعم", "ar", True, "YES", None, ""),
    ("مُسَاعَدَة", "ar", True, "HELP", None, ""),
    ("أحتاج مساعدة", "ar", True, "NEED", None, ""),
    ("نیاز به کمک", "fa", True, "NEED", None, ""),  # a three-word keyword
    ("کمک", "fa", True, "HELP", None, ""),
    ("پاک\u200cکردن", "fa", True, "DELETE", None, ""),
    ("मदद चाहिए", "hi", True, "NEED", None, ""),
    ("मदद", "hi", True, "HELP", None, ""),
    # English words work in every language
    ("STOP", "ar", True, "STOP", None, ""),
    ("help", "ru", True, "HELP", None, ""),
    ("yes", "am", True, "YES", None, ""),
    # another language's word does not, once the language is known; it does before
    ("AIDE", "es", True, None, None, ""),
    ("AIDE", None, True, "HELP", None, ""),
    ("oui", None, True, "YES", None, ""),
    ("НЕТ", None, True, "NO", None, ""),
    # numbers in any script
    ("1", "en", True, None, 1, ""),
    (" 7 ", "en", True, None, 7, ""),
    ("2.", "fr", True, None, 2, ""),
    ("١", "ar", True, None, 1, ""),
    ("۲", "fa", True, None, 2, ""),
    ("३", "hi", True, None, 3, ""),
    ("৪", "bn", True, None, 4, ""),
    ("१२", "ne", True, None, 12, ""),
    ("፭", "am", True, None, 5, ""),
    ("５", "en", True, None, 5, ""),
    ("0", "en", True, None, 0, ""),
    ("1 2", "en", True, None, None, ""),  # two numbers are not one
    ("²", "en", True, None, 2, ""),  # NFKC: a superscript two is a two
    ("①", "en", True, None, 1, ""),
    ("\U00010a40", "en", True, None, None, ""),  # a Kharoshthi digit has no decimal value: not a number
    ("\U00010a40", None, True, None, None, ""),
    # command arguments
    ("STATUS K7Q2M9", "en", True, "STATUS", None, "k7q2m9"),
    ("estado k7q2m9", "es", True, "STATUS", None, "k7q2m9"),
    ("СТАТУС k7q2-m9", "ru", True, "STATUS", None, "k7q2-m9"),
    ("स्थिति ab12", "hi", True, "STATUS", None, "ab12"),
    ("STATUS", "en", True, "STATUS", None, ""),
    ("CODE OFF", "en", True, "CODE", None, "off"),
    ("رمز OFF", "ar", True, "CODE", None, "off"),
    ("CODE ARRÊT", "fr", True, "CODE", None, "arret"),  # the rest is normalised like the command
    ("КОД СТОП", "ru", True, "CODE", None, "стоп"),
    # check-in words, one word or several
    ("SOS", "ar", True, "NEED", None, ""),
    ("نجدة", "ar", True, "NEED", None, ""),
    ("OK", "ru", True, "SAFE", None, ""),
    ("en sécurité", "fr", True, "SAFE", None, ""),
    ("В ПОРЯДКЕ", "ru", True, "SAFE", None, ""),
    # decided: a number typed with its button label is neither the number nor the word (the bot asks again)
    ("1 YES", "en", True, None, None, ""),
    ("2 NON", "fr", True, None, None, ""),
    ("1 I am safe", "en", True, None, None, ""),
    # nothing at all
    ("", "en", True, None, None, ""),
    ("   ", "en", True, None, None, ""),
    ("🙂", "en", True, None, None, ""),
    ("x" * 5000, "en", True, None, None, ""),
]


@pytest.mark.parametrize(("typed", "language", "fuzzy", "command", "number", "rest"), CLASSIFY)
def test_classify(typed: str, language: str | None, fuzzy: bool, command: str | None, number: int | None,
                  rest: str) -> None:
    intent = classify(typed, language, fuzzy=fuzzy)
    assert (intent.command, intent.number, intent.rest) == (command, number, rest)
    assert intent.text == typed.strip()


@pytest.mark.parametrize(("typed", "language", "skip"), [
    ("0", "en", True), ("٠", "ar", True), ("۰", "fa", True), ("०", "hi", True), ("SKIP", "en", True),
    ("skip", "ar", True), ("PASSER", "fr", True), ("omitir", "es", True), ("تخطي", "ar", True),
    ("ПРОПУСТИТЬ", "ru", True), ("ruka", "sw", True), ("1", "en", False), ("no", "en", False), ("", "en", False),
])
def test_skip(typed: str, language: str, skip: bool) -> None:
    assert classify(typed, language).skip is skip


@pytest.mark.parametrize("typed", ["9" * 5000, "1" + "0" * 4400, "99999999999999999999"])
def test_a_very_long_number_is_beyond_every_menu(typed: str) -> None:
    number = classify(typed, "en").number
    assert number is not None and number > 10 ** 9


def test_leading_zeros_do_not_make_a_number_long() -> None:
    assert classify("0" * 5000 + "2", "en").number == 2


def test_intent_is_plain_data() -> None:
    assert classify("HELP", "en") == Intent(command="HELP", text="HELP")
    with pytest.raises(AttributeError):
        classify("HELP", "en").command = "STOP"  # type: ignore[misc]


# --------------------------------------------------------------------------- each language's own words

def _variants(word: str) -> list[str]:
    """How people type a keyword: as written, lower case, padded, with punctuation."""
    return [word, word.lower(), f"  {word}  ", f"{word}!", f"{word.lower()}?"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_catalog_keyword_reaches_its_command(language: str) -> None:
    for command in texts.KEYWORDS:
        for word in words(language, command):
            for typed in _variants(word):
                assert classify(typed, language).command == command, (language, command, typed)
                assert classify(typed, language, fuzzy=False).command == command, (language, command, typed)
                # before the language is known (the first message), the word means the same
                assert classify(typed, None).command == command, (language, command, typed)


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_keyword_means_two_commands_in_one_language(language: str) -> None:
    seen: dict[str, str] = {}
    for source in dict.fromkeys(("en", language)):
        for command in texts.KEYWORDS:
            for word in words(source, command):
                key = normalise(word).replace(" ", "")
                assert key, (language, command, word)
                assert seen.setdefault(key, command) == command, (
                    f"{language}: {word!r} means both {seen[key]} and {command}")
    assert keyword_table(language) == seen


def test_no_keyword_means_two_commands_across_languages() -> None:
    """The first message is read with every language's words: none may mean two things."""
    seen: dict[str, tuple[str, str]] = {}
    for language in LANGUAGES:
        for command in texts.KEYWORDS:
            for word in words(language, command):
                key = normalise(word).replace(" ", "")
                first = seen.setdefault(key, (command, language))
                assert first[0] == command, f"{word!r} is {command} in {language} but {first[0]} in {first[1]}"
    assert set(any_language_table()) == set(seen)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_everyday_word_for_help_is_help_and_never_need(language: str) -> None:
    everyday = EVERYDAY_HELP[language]
    assert words(language, "HELP")[0] == everyday
    assert normalise(everyday) not in {normalise(w) for w in words(language, "NEED")}
    for typed in _variants(everyday):
        assert classify(typed, language).command == "HELP", typed
    # the information words stay HELP alternatives, and the English words keep working
    for word in ("HELP", "INFO", "help"):
        assert classify(word, language).command == "HELP"
    for word in ("SOS", "NEED"):
        assert classify(word, language).command == "NEED"


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_every_language_has_its_own_words(language: str) -> None:
    """A translated keyword list is not just the English one (the catalog entry was translated)."""
    english = {normalise(w) for command in texts.KEYWORDS for w in words("en", command)}
    own = [w for command in ("JOIN", "HELP", "DELETE", "STOP", "YES", "NO", "SKIP", "MYDATA")
           for w in words(language, command)]
    assert any(normalise(w) not in english for w in own), language
    for command in ("HELP", "DELETE", "YES", "SKIP", "MYDATA"):  # Spanish "NO" is "NO"
        assert any(normalise(w) not in english for w in words(language, command)), (language, command)
