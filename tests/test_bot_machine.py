"""The conversation as data in, data out: `bot.machine.step(config, state, message)` -> Transition.

No mocks and no I/O: a state and a message go in, the next state, the replies and the effects come out, and
the expected replies are the catalogs' own renderings of the message ids in bot/texts.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot import texts
from bot.areas import Gazetteer
from bot.i18n import LANGUAGES, gettext_for, render
from bot.machine import step
from bot.state import BotConfig, Decline, Erase, GiveConsent, Message, Profile, Reply, State, Step, Transition
from channels.segments import segments

CONFIG = BotConfig(gazetteer=Gazetteer.load(), operator="Red Crescent Tripoli Team")
AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PHONE = "+218912345678"  # a Libyan number: Arabic is suggested first
ADDRESSES = (("sms", PHONE),)
NATIVE_ZERO = {"ar": "٠", "fa": "۰", "ur": "۰", "hi": "०", "ne": "०", "bn": "০"}
JUNK = ["", "   ", "🙂", "🆘🆘", "!!!", "x" * 5000, "asdf qwer zxcv", "؟؟؟ أين أنتم الآن", "שלום עליכם",
        "\u200f\u200e", "٩٩٩", "۸۸۸", "९९९", "৯৯৯", "99999999999999999999"]


# --------------------------------------------------------------------------- helpers

def message(text: str, *, hint: str | None = None, carrier: str | None = None, address: str = PHONE) -> Message:
    return Message(text=text, channel="sms", address=address, at=AT, language_hint=hint, carrier_opt_out=carrier)


def send(state: State, text: str, **kwargs: str | None) -> Transition:
    return step(CONFIG, state, message(text, **kwargs))  # type: ignore[arg-type]


def converse(state: State, *texts_: str, hint: str | None = None) -> Transition:
    """Several messages in a row; the transition of the last one."""
    transition = Transition(state)
    for text in texts_:
        transition = send(transition.state, text, hint=hint)
    return transition


def say(language: str, msg: str, **params: object) -> str:
    """What the catalog says for ``msg`` in ``language`` (the bot's own rendering must equal it)."""
    return render(language, msg, operator=CONFIG.operator, months=CONFIG.retention_months, **params)


def word(language: str, command: str) -> str:
    """A language's own first keyword for ``command``, from its catalog."""
    return gettext_for(language, texts.KEYWORDS[command]).split("|")[0]


def area_menu(language: str) -> str:
    gazetteer = CONFIG.gazetteer
    return "\n".join(f"{n} {gazetteer.areas[a].name(language)}" for n, a in enumerate(gazetteer.top_level, 1))


def area_question(language: str) -> str:
    return say(language, texts.AREA_QUESTION, menu=area_menu(language))


def language_list(menu: tuple[str, ...]) -> str:
    return "\n".join(f"{n} {LANGUAGES[code]}" for n, code in enumerate(menu, 1))


def suggested_menu(first: str) -> tuple[str, ...]:
    return (first, *(code for code in LANGUAGES if code != first))


def texts_of(transition: Transition) -> list[str]:
    return [reply.text for reply in transition.replies]


def registered(language: str, **profile: object) -> State:
    return State(step=Step.IDLE, profile=Profile(language=language, area_id="tripoli", **profile),  # type: ignore
                 consented=True, consent_at=AT, addresses=ADDRESSES)


QUESTION = {
    Step.FIRST_NAME: texts.ASK_FIRST_NAME, Step.NATIONALITY: texts.ASK_NATIONALITY, Step.GENDER: texts.ASK_GENDER,
    Step.AGE_BAND: texts.ASK_AGE_BAND, Step.HOUSEHOLD: texts.ASK_HOUSEHOLD, Step.CONTACT: texts.ASK_CONTACT,
}
OPTIONAL = tuple(QUESTION)
NEXT = {**dict(zip(OPTIONAL, OPTIONAL[1:], strict=False)), Step.CONTACT: Step.IDLE}


def states(language: str) -> dict[str, State]:
    """A state at every step, each reached by talking to the bot (a person whose phone suggests ``language``)."""
    found: dict[str, State] = {"new": State(addresses=ADDRESSES)}
    t = send(found["new"], "JOIN", hint=language)
    found["language"] = t.state
    t = send(t.state, language, hint=language)
    found["consent"] = t.state
    t = send(t.state, "1")
    found["area"] = t.state
    t = send(t.state, "1")
    for optional in OPTIONAL:
        found[optional.value] = t.state
        t = send(t.state, "0")
    found["idle"] = t.state
    found["update_menu"] = send(t.state, "UPDATE").state
    found["confirm_delete"] = send(t.state, "DELETE").state
    found["language (LANG)"] = send(t.state, "LANG").state
    found["area (UPDATE)"] = converse(t.state, "UPDATE", "2").state
    found["first_name (UPDATE)"] = converse(t.state, "UPDATE", "3").state
    found["household_size (UPDATE)"] = converse(t.state, "UPDATE", "7").state
    for label, state in found.items():
        assert label.split(" ")[0] == state.step.value, label
        assert state.language == language or label == "new"
    return found


STATE_LABELS = ["new", "language", "consent", "area", *(s.value for s in OPTIONAL), "idle", "update_menu",
                "confirm_delete", "language (LANG)", "area (UPDATE)", "first_name (UPDATE)",
                "household_size (UPDATE)"]


def pending_question(language: str, state: State) -> list[str]:
    """The replies that ask what ``state`` is waiting for (what HELP must ask again)."""
    s = state.step
    if s is Step.LANGUAGE:
        return [say(language, texts.LANGUAGE_MENU), language_list(suggested_menu(language))]
    if s is Step.CONSENT:
        return [say(language, texts.NOTICE), say(language, texts.CONSENT_QUESTION)]
    if s is Step.AREA:
        return [area_question(language)]
    if s in QUESTION:
        return [say(language, QUESTION[s])]
    if s is Step.UPDATE_MENU:
        return [say(language, texts.UPDATE_MENU)]
    if s is Step.CONFIRM_DELETE:
        return [say(language, texts.DELETE_CONFIRM)]
    assert s is Step.IDLE
    return []


# --------------------------------------------------------------------------- full registration, every language

# how each language is picked from the menu: by number, by ISO code or by its own name (in turn)
PICK = {code: ("number", "code", "name")[i % 3] for i, code in enumerate(LANGUAGES)}


@pytest.mark.parametrize("language", LANGUAGES)
def test_full_registration(language: str) -> None:
    state = State(addresses=ADDRESSES)
    replies: list[tuple[str, str, str]] = []  # (what the bot said, what the catalog says, what English says)

    def expect(transition: Transition, *expected: tuple[str, dict[str, object]]) -> None:
        assert len(transition.replies) == len(expected), texts_of(transition)
        for reply, (msg, params) in zip(transition.replies, expected, strict=True):
            replies.append((reply.text, say(language, msg, **params), say("en", msg, **params)))

    # JOIN from a Libyan number: the welcome is in Arabic, the menu lists Arabic first
    t = send(state, "JOIN")
    assert t.state.step is Step.LANGUAGE and t.effects == ()
    menu = suggested_menu("ar")
    assert texts_of(t) == [say("ar", texts.LANGUAGE_SUGGESTED), language_list(menu)]
    assert t.replies[1].buttons == tuple((LANGUAGES[code], str(n)) for n, code in enumerate(menu, 1))

    # the language: by the number shown, its ISO code or its own name
    number = texts_of(t)[1].splitlines().index(f"{menu.index(language) + 1} {LANGUAGES[language]}") + 1
    typed = {"number": str(number), "code": f" {language.upper()} ", "name": LANGUAGES[language].upper()}
    t = send(t.state, typed[PICK[language]])
    assert t.state.step is Step.CONSENT and t.state.language == language
    expect(t, (texts.NOTICE, {}), (texts.CONSENT_QUESTION, {}))
    assert t.replies[1].buttons == ((f"1 {word(language, 'YES')}", "1"), (f"2 {word(language, 'NO')}", "2"))

    # consent with the language's own YES
    t = send(t.state, word(language, "YES").lower())
    assert t.effects == (GiveConsent(CONFIG.notice_version, language),)
    assert t.state.consented and t.state.consent_at == AT and not t.state.registered
    assert t.state.step is Step.AREA
    expect(t, (texts.AREA_QUESTION, {"menu": area_menu(language)}))
    assert segments(t.replies[0].text).segments <= 3
    assert [label for label, _ in t.replies[0].buttons] == area_menu(language).replace("\n", " ").split(" ")[1::2]

    # the area: by number, or by its name in another language (case, accents and spacing ignored)
    by_number = list(LANGUAGES).index(language) % 2 == 0
    area_id = "misrata" if by_number else ("zawiya" if language == "ar" else "tripoli")
    typed_area = "3" if by_number else ("  ZAOUIA " if language == "ar" else "طرابلس")
    t = send(t.state, typed_area)
    assert t.state.registered and t.state.profile.area_id == area_id and t.effects == ()
    expect(t, (texts.REGISTERED, {}), (texts.ASK_FIRST_NAME, {}))

    # every optional question skipped: with 0 (in the language's own digits too) and with its own SKIP
    skips = ["0", word(language, "SKIP"), NATIVE_ZERO.get(language, "0"), word(language, "SKIP").lower(), "0",
             f" {word(language, 'SKIP')}. "]
    for optional, skip in zip(OPTIONAL, skips, strict=True):
        assert t.state.step is optional
        t = send(t.state, skip)
        nxt = NEXT[optional]
        expect(t, (QUESTION[nxt], {}) if nxt in QUESTION else (texts.PROFILE_DONE, {}))
    assert t.state.step is Step.IDLE
    assert t.state.profile == Profile(language=language, area_id=area_id)

    # MYDATA, in the language's own word, shows the area by its name in that language
    t = send(t.state, word(language, "MYDATA"))
    assert t.state.profile == Profile(language=language, area_id=area_id) and t.effects == ()
    lines = "\n".join(texts_of(t)).splitlines()
    area_name = CONFIG.gazetteer.areas[area_id].name(language)
    assert lines[0] == gettext_for(language, texts.MYDATA_HEADER)
    assert f"sms: {PHONE}" in lines
    assert f"{gettext_for(language, texts.LABEL_AREA)}: {area_name}" in lines
    assert f"{gettext_for(language, texts.LABEL_LANGUAGE)}: {LANGUAGES[language]}" in lines
    assert f"{gettext_for(language, texts.LABEL_CONSENT)}: 2026-11-25" in lines
    replies.append((lines[0], gettext_for(language, texts.MYDATA_HEADER), texts.MYDATA_HEADER))

    # every reply after the language choice is the catalog's text in that language, not the English one
    for said, catalog, english in replies:
        assert said == catalog
        if language != "en":
            assert said != english, said
    assert len(replies) >= 12


def test_the_suggested_language_is_taken_with_1() -> None:
    t = converse(State(), "hello", "1")
    assert t.state.language == "ar" and texts_of(t) == [say("ar", texts.NOTICE), say("ar", texts.CONSENT_QUESTION)]


@pytest.mark.parametrize(("hint", "address", "suggested"), [
    ("fr", PHONE, "fr"), ("pt-BR", PHONE, "pt"), ("de", PHONE, "ar"), (None, "+2348012345678", "en"),
    (None, "+93701234567", "fa"), (None, "+251911234567", "am"), (None, "telegram-chat", "en"),
])
def test_the_first_message_suggests_a_language(hint: str | None, address: str, suggested: str) -> None:
    t = step(CONFIG, State(), message("hi", hint=hint, address=address))
    assert texts_of(t) == [say(suggested, texts.LANGUAGE_SUGGESTED), language_list(suggested_menu(suggested))]
    assert t.state.menu == suggested_menu(suggested)


@pytest.mark.parametrize("typed", ["17", "0", "Klingon", "english please", "🙂", ""])
def test_an_unknown_language_is_asked_again(typed: str) -> None:
    t = converse(State(), "JOIN", typed)
    assert t.state.step is Step.LANGUAGE and t.state.language == "ar"
    assert texts_of(t) == [say("ar", texts.LANGUAGE_UNKNOWN), language_list(suggested_menu("ar"))]


# --------------------------------------------------------------------------- no consent

@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("answer", ["2", "no", "own"])
def test_no_at_consent_keeps_nothing_but_an_opt_out_marker(language: str, answer: str) -> None:
    at_consent = replace(states(language)["consent"], addresses=ADDRESSES)
    t = send(at_consent, word(language, "NO") if answer == "own" else answer)
    assert t.effects == (Decline(),)
    assert texts_of(t) == [say(language, texts.NO_CONSENT)]
    # the marker: opted out, the language to answer in, and nothing else
    assert t.state == State(opted_out=True, profile=Profile(language=language))
    assert replace(t.state.profile, language=None) == Profile()
    assert not t.state.consented and t.state.consent_at is None and t.state.addresses == ()


def test_after_declining_join_starts_again_in_the_chosen_language() -> None:
    declined = converse(State(), "JOIN", "fr", "NON").state
    t = send(declined, "JOIN")  # a Libyan number, but the person chose French
    assert texts_of(t) == [say("fr", texts.LANGUAGE_SUGGESTED), language_list(suggested_menu("fr"))]
    t = converse(t.state, "1", "oui")
    assert t.state.consented and not t.state.opted_out and t.effects == (GiveConsent(CONFIG.notice_version, "fr"),)


@pytest.mark.parametrize("typed", ["maybe", "3", "0", "", "🙂", "x" * 5000])
def test_an_unclear_consent_answer_is_asked_again(typed: str) -> None:
    at_consent = converse(State(), "JOIN", "es").state
    t = send(at_consent, typed)
    assert t.state == at_consent and t.effects == ()
    assert texts_of(t) == [say("es", texts.CONSENT_UNCLEAR)]
    assert t.replies[0].buttons == (("1 SÍ", "1"), ("2 NO", "2"))


# --------------------------------------------------------------------------- optional questions

# step, typed, the value kept (None: invalid), the explanation for an invalid answer
OPTIONAL_ANSWERS = [
    (Step.FIRST_NAME, "Amina", "Amina", None),
    (Step.FIRST_NAME, "  Jean   Pierre ", "Jean Pierre", None),
    (Step.FIRST_NAME, "أمينة", "أمينة", None),
    (Step.FIRST_NAME, "Jion", "Jion", None),  # a name that looks like a typo of JOIN is a name here
    (Step.FIRST_NAME, "Amina2", None, texts.INVALID_NAME),
    (Step.FIRST_NAME, "amina@example.org", None, texts.INVALID_NAME),
    (Step.FIRST_NAME, "A" * 41, None, texts.INVALID_NAME),
    (Step.FIRST_NAME, "🙂", None, texts.INVALID_NAME),
    (Step.FIRST_NAME, "", None, texts.INVALID_NAME),
    (Step.FIRST_NAME, "12", None, texts.INVALID_NAME),
    (Step.NATIONALITY, "Nigeria", "NG", None),
    (Step.NATIONALITY, "nigéria", "NG", None),
    (Step.NATIONALITY, "سوريا", "SY", None),
    (Step.NATIONALITY, "Сирия", "SY", None),
    (Step.NATIONALITY, "AFGHANISTAN", "AF", None),
    (Step.NATIONALITY, "sd", "SD", None),
    (Step.NATIONALITY, "Atlantis", None, texts.INVALID_NATIONALITY),
    (Step.NATIONALITY, "5", None, texts.INVALID_NATIONALITY),
    (Step.NATIONALITY, "", None, texts.INVALID_NATIONALITY),
    (Step.GENDER, "1", "female", None),
    (Step.GENDER, "२", "male", None),
    (Step.GENDER, "3", "other", None),
    (Step.GENDER, "4", None, texts.INVALID_CHOICE),
    (Step.GENDER, "x", None, texts.INVALID_CHOICE),
    (Step.AGE_BAND, "1", "0-17", None),
    (Step.AGE_BAND, "٢", "18-29", None),
    (Step.AGE_BAND, "5", "60+", None),
    (Step.AGE_BAND, "6", None, texts.INVALID_CHOICE),
    (Step.AGE_BAND, "thirty", None, texts.INVALID_CHOICE),
    (Step.HOUSEHOLD, "4", 4, None),
    (Step.HOUSEHOLD, "۵", 5, None),
    (Step.HOUSEHOLD, "50", 50, None),
    (Step.HOUSEHOLD, "51", None, texts.INVALID_NUMBER),
    (Step.HOUSEHOLD, "many", None, texts.INVALID_NUMBER),
    (Step.CONTACT, "+2348012345678", "+2348012345678", None),
    (Step.CONTACT, "+234 801 234 5678", "+2348012345678", None),
    (Step.CONTACT, "0912345679", "+218912345679", None),  # read in the sender's own country
    (Step.CONTACT, "+٢٣٤٨٠١٢٣٤٥٦٧٨", "+2348012345678", None),
    (Step.CONTACT, "12345", None, texts.INVALID_PHONE),
    (Step.CONTACT, "call my brother", None, texts.INVALID_PHONE),
    (Step.CONTACT, PHONE, None, texts.INVALID_PHONE),  # one's own number is no emergency contact
]
FIELD = {Step.FIRST_NAME: "first_name", Step.NATIONALITY: "nationality", Step.GENDER: "gender",
         Step.AGE_BAND: "age_band", Step.HOUSEHOLD: "household_size", Step.CONTACT: "family_contact"}


@pytest.mark.parametrize("language", ["en", "ar", "fr", "ru", "hi", "am"])
@pytest.mark.parametrize(("at", "typed", "value", "invalid"), OPTIONAL_ANSWERS)
def test_optional_answers(language: str, at: Step, typed: str, value: object, invalid: str | None) -> None:
    state = states(language)[at.value]
    t = send(state, typed)
    assert t.effects == ()
    if value is None:
        assert invalid is not None
        assert t.state == state
        assert texts_of(t) == [say(language, invalid)]
        return
    assert getattr(t.state.profile, FIELD[at]) == value
    assert replace(t.state.profile, **{FIELD[at]: None}) == state.profile
    nxt = NEXT[at]
    assert t.state.step is nxt
    assert texts_of(t) == [say(language, QUESTION[nxt] if nxt in QUESTION else texts.PROFILE_DONE)]


def test_optional_answers_then_mydata_shows_them_all() -> None:
    t = converse(states("fr")["first_name"], "Amina", "Soudan", "1", "2", "4", "+2348012345678", "MES DONNÉES")
    lines = "\n".join(texts_of(t)).splitlines()
    for label, value in ((texts.LABEL_FIRST_NAME, "Amina"), (texts.LABEL_NATIONALITY, "Soudan"),
                         (texts.LABEL_GENDER, gettext_for("fr", texts.GENDER_FEMALE)), (texts.LABEL_AGE_BAND, "18-29"),
                         (texts.LABEL_HOUSEHOLD, "4"), (texts.LABEL_CONTACT, "+2348012345678"),
                         (texts.LABEL_MESSAGES, gettext_for("fr", texts.VALUE_ON))):
        assert f"{gettext_for('fr', label)}: {value}" in lines


# --------------------------------------------------------------------------- UPDATE

# menu number, typed answer, the field and its new value
UPDATES = [
    ("2", "Benghazi", "area_id", "benghazi"),
    ("2", "بنغازي", "area_id", "benghazi"),
    ("3", "Fatima", "first_name", "Fatima"),
    ("4", "Soudan", "nationality", "SD"),
    ("5", "2", "gender", "male"),
    ("6", "3", "age_band", "30-44"),
    ("7", "6", "household_size", 6),
    ("8", "+2348012345678", "family_contact", "+2348012345678"),
]


@pytest.mark.parametrize("language", ["en", "fr", "ar", "sw"])
@pytest.mark.parametrize(("number", "typed", "field", "value"), UPDATES)
def test_update_each_field(language: str, number: str, typed: str, field: str, value: object) -> None:
    before = registered(language, first_name="Amina", nationality="NG", gender="female", age_band="18-29",
                        household_size=2, family_contact="+2348011111111")
    t = send(before, "UPDATE")
    assert t.state.step is Step.UPDATE_MENU and texts_of(t) == [say(language, texts.UPDATE_MENU)]
    t = send(t.state, number)
    assert t.state.editing is not None
    t = send(t.state, typed)
    assert texts_of(t) == [say(language, texts.SAVED)]
    assert t.state.step is Step.IDLE and t.state.editing is None and t.effects == ()
    assert t.state.profile == replace(before.profile, **{field: value})


@pytest.mark.parametrize("language", ["en", "pt", "fa", "bn"])
def test_update_the_language(language: str) -> None:
    before = registered("en", first_name="Amina")
    t = converse(before, "UPDATE", "1")
    assert t.state.step is Step.LANGUAGE
    assert texts_of(t) == [say("en", texts.LANGUAGE_MENU), language_list(suggested_menu("en"))]
    t = send(t.state, language)
    assert texts_of(t) == [gettext_for(language, texts.LANGUAGE_SET)]
    assert t.state.step is Step.IDLE and t.state.profile == replace(before.profile, language=language)


def test_update_with_the_languages_own_word_and_invalid_answers() -> None:
    before = registered("tr")
    t = send(before, "güncelle")
    assert texts_of(t) == [say("tr", texts.UPDATE_MENU)]
    for typed in ("9", "abc", ""):
        again = send(t.state, typed)
        assert again.state == t.state and texts_of(again) == [say("tr", texts.INVALID_CHOICE)]
    t = converse(t.state, "7", "99")
    assert t.state.step is Step.HOUSEHOLD and texts_of(t) == [say("tr", texts.INVALID_NUMBER)]
    t = send(t.state, "3")
    assert texts_of(t) == [say("tr", texts.SAVED)] and t.state.profile.household_size == 3
    # 0 leaves the menu without a change
    t = converse(t.state, "UPDATE", "0")
    assert t.state.step is Step.IDLE and texts_of(t) == [say("tr", texts.SAVED)]


def test_update_before_registering_starts_registration() -> None:
    t = send(State(), "UPDATE")
    assert t.state.step is Step.LANGUAGE and texts_of(t)[0] == say("ar", texts.LANGUAGE_SUGGESTED)


# --------------------------------------------------------------------------- LANG

@pytest.mark.parametrize("at", ["consent", "area", "first_name", "gender", "family_contact"])
def test_lang_in_the_middle_of_registration_resumes_there(at: str) -> None:
    state = states("en")[at]
    t = send(state, "LANG")
    assert t.state.step is Step.LANGUAGE and t.effects == ()
    assert texts_of(t) == [say("en", texts.LANGUAGE_MENU), language_list(suggested_menu("en"))]
    t = send(t.state, "Українська")
    assert t.state.step is state.step and t.state.language == "uk"
    assert replace(t.state.profile, language="en") == state.profile
    resumed = pending_question("uk", t.state)
    if at == "consent":
        assert texts_of(t) == resumed  # nothing to confirm yet: the notice and the question, in Ukrainian
    else:
        assert texts_of(t) == [gettext_for("uk", texts.LANGUAGE_SET), *resumed]
    if at in ("first_name", "gender"):
        # and the questions go on from there
        nxt = NEXT[state.step]
        assert texts_of(send(t.state, "0")) == [say("uk", QUESTION[nxt])]


def test_lang_at_idle_changes_the_language_only() -> None:
    before = registered("en", first_name="Amina")
    t = converse(before, "LANG", "3")  # the menu shows English first, then French, Spanish ...
    assert t.state == replace(before, profile=replace(before.profile, language="es"))
    assert texts_of(t) == [gettext_for("es", texts.LANGUAGE_SET)]


def test_lang_during_an_update_keeps_the_field_being_edited() -> None:
    t = converse(registered("en", first_name="Amina"), "UPDATE", "3", "LANG", "ar")
    assert texts_of(t) == [gettext_for("ar", texts.LANGUAGE_SET), say("ar", texts.ASK_FIRST_NAME)]
    t = send(t.state, "Fatima")
    assert texts_of(t) == [say("ar", texts.SAVED)]  # saved, not the next optional question
    assert t.state.step is Step.IDLE and t.state.profile.first_name == "Fatima" and t.state.language == "ar"


def test_lang_at_the_language_menu_shows_it_again() -> None:
    at_menu = converse(State(), "JOIN").state
    t = send(at_menu, "LANG")
    assert t.state.step is Step.LANGUAGE
    assert texts_of(t) == [say("ar", texts.LANGUAGE_MENU), language_list(suggested_menu("ar"))]
    assert send(t.state, "fa").state.step is Step.CONSENT


# --------------------------------------------------------------------------- DELETE

@pytest.mark.parametrize("language", ["en", "fr", "ar", "tl", "ne"])
@pytest.mark.parametrize("yes", ["1", "own", "YES"])
def test_delete_confirmed_erases(language: str, yes: str) -> None:
    before = registered(language, first_name="Amina", household_size=3)
    t = send(before, word(language, "DELETE"))
    assert t.state.step is Step.CONFIRM_DELETE and t.effects == () and t.state.profile == before.profile
    assert texts_of(t) == [say(language, texts.DELETE_CONFIRM)]
    assert t.replies[0].buttons == ((f"1 {word(language, 'YES')}", "1"), (f"2 {word(language, 'NO')}", "2"))
    t = send(t.state, word(language, "YES") if yes == "own" else yes)
    assert t.effects == (Erase(),)
    assert texts_of(t) == [say(language, texts.DELETED)]
    assert not t.state.registered and not t.state.consented
    assert replace(t.state.profile, language=None) == Profile() and t.state.addresses == ()


@pytest.mark.parametrize("language", ["en", "es", "ur", "bn"])
@pytest.mark.parametrize("no", ["2", "own", "NO"])
def test_delete_cancelled_keeps_everything(language: str, no: str) -> None:
    before = registered(language, first_name="Amina")
    t = converse(before, "DELETE", word(language, "NO") if no == "own" else no)
    assert t.effects == () and t.state == before
    assert texts_of(t) == [say(language, texts.DELETE_CANCELLED)]


def test_delete_cancelled_in_the_middle_asks_the_question_again() -> None:
    at_gender = states("ru")["gender"]
    t = send(at_gender, "УДАЛИТЬ")
    assert texts_of(t) == [say("ru", texts.DELETE_CONFIRM)]
    unclear = send(t.state, "может быть")
    assert unclear.state == t.state and texts_of(unclear) == [say("ru", texts.CONSENT_UNCLEAR)]
    t = send(t.state, "нет")
    assert t.state == at_gender and t.effects == ()
    assert texts_of(t) == [say("ru", texts.DELETE_CANCELLED), say("ru", texts.ASK_GENDER)]
    assert send(t.state, "2").state.profile.gender == "male"


def test_delete_during_registration_then_yes() -> None:
    at_area = states("fr")["area"]
    t = converse(at_area, "SUPPRIMER", "OUI")
    assert t.effects == (Erase(),) and texts_of(t) == [say("fr", texts.DELETED)]


# --------------------------------------------------------------------------- STOP / START

@pytest.mark.parametrize("language", LANGUAGES)
def test_stop_and_start(language: str) -> None:
    before = registered(language, first_name="Amina")
    t = send(before, word(language, "STOP"))
    assert t.state == replace(before, opted_out=True) and t.effects == ()
    assert texts_of(t) == [say(language, texts.STOPPED)]
    mine = "\n".join(texts_of(send(t.state, "MYDATA")))
    assert f"{gettext_for(language, texts.LABEL_MESSAGES)}: {gettext_for(language, texts.VALUE_OFF)}" in mine
    t = send(t.state, word(language, "START"))
    assert t.state == before and t.effects == ()
    assert texts_of(t) == [say(language, texts.RESUMED)]


@pytest.mark.parametrize("typed", ["STOP", "stop", "Unsubscribe", "CANCEL", "end", "quit", "STOPALL", "arrêt"])
def test_carrier_and_english_stop_words(typed: str) -> None:
    before = registered("fr")
    t = send(before, typed)
    assert t.state.opted_out and texts_of(t) == [say("fr", texts.STOPPED)]


@pytest.mark.parametrize("at", ["new", "consent", "idle", "household_size"])
@pytest.mark.parametrize("carrier", ["STOP", "START"])
def test_carrier_opt_out_is_recorded_and_not_answered(at: str, carrier: str) -> None:
    state = replace(states("en")[at], opted_out=carrier == "START")
    t = send(state, carrier.lower(), carrier=carrier)
    assert t.replies == () and t.effects == ()
    assert t.state == replace(state, opted_out=carrier == "STOP")


def test_stop_before_registering_then_start_registers() -> None:
    t = send(State(), "STOP")
    assert t.state.opted_out and texts_of(t) == [say("ar", texts.STOPPED)]
    t = send(t.state, "START")
    assert not t.state.opted_out and t.state.step is Step.LANGUAGE
    assert texts_of(t)[0] == say("ar", texts.LANGUAGE_SUGGESTED)


def test_start_when_registered_and_not_stopped_says_registered() -> None:
    t = send(registered("sw"), "ANZA")
    assert t.state == registered("sw") and texts_of(t) == [say("sw", texts.REGISTERED)]


# --------------------------------------------------------------------------- HELP

@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("label", STATE_LABELS)
def test_help_at_every_step(language: str, label: str) -> None:
    state = states(language)[label]
    for typed in ("HELP", word(language, "HELP"), word(language, "HELP").lower() + "!"):
        t = send(state, typed, hint=language)
        help_text = say(language, texts.HELP)
        assert texts_of(t)[0] == help_text, typed
        assert t.effects == ()  # never a check-in, never consent, never erasure
        assert t.state.opted_out == state.opted_out and t.state.consented == state.consented
        checkins = {say(language, m) for m in (texts.CHECKIN_SAFE, texts.CHECKIN_NEED_HELP, texts.CASE_RECORDED)}
        assert not checkins & set(texts_of(t))
        if state.step is Step.NEW:  # the first message starts registration, HELP included
            assert t.state.step is Step.LANGUAGE and t.state.profile == Profile(language=language)
            assert texts_of(t)[1:] == [say(language, texts.LANGUAGE_SUGGESTED),
                                       language_list(suggested_menu(language))]
            continue
        assert t.state == state, typed
        assert texts_of(t)[1:] == pending_question(language, state), typed


def test_help_twice_in_a_row_changes_nothing() -> None:
    state = states("hi")["household_size"]
    first, second = send(state, "मदद"), converse(state, "मदद", "मदद")
    assert second.state == first.state == state and texts_of(second) == texts_of(first)


# --------------------------------------------------------------------------- commands end pending questions

@pytest.mark.parametrize("at", ["first_name", "nationality", "gender", "age_band", "household_size", "family_contact",
                                "update_menu", "area (UPDATE)", "first_name (UPDATE)", "confirm_delete"])
def test_mydata_ends_a_pending_question(at: str) -> None:
    state = states("pt")[at]
    t = send(state, "meus dados")
    assert t.state.step is Step.IDLE and t.state.profile == state.profile and t.effects == ()
    assert texts_of(t)[0].startswith(gettext_for("pt", texts.MYDATA_HEADER))
    # what comes next is not taken as the answer to the question that was pending
    after = send(t.state, "2")
    assert after.state == t.state and texts_of(after) == [say("pt", texts.NOT_UNDERSTOOD)]


@pytest.mark.parametrize("at", ["first_name", "gender", "household_size", "first_name (UPDATE)"])
def test_stop_ends_a_pending_question(at: str) -> None:
    state = states("en")[at]
    t = send(state, "STOP")
    assert t.state == replace(state, opted_out=True, step=Step.IDLE, editing=None, menu=(), resume=None)
    assert texts_of(t) == [say("en", texts.STOPPED)]


@pytest.mark.parametrize(("at", "typed", "expected_step", "first_reply"), [
    ("household_size", "UPDATE", Step.UPDATE_MENU, texts.UPDATE_MENU),
    ("gender", "JOIN", Step.IDLE, texts.REGISTERED),
    ("nationality", "DELETE", Step.CONFIRM_DELETE, texts.DELETE_CONFIRM),
    ("first_name", "LANG", Step.LANGUAGE, texts.LANGUAGE_MENU),
    ("first_name", "MYDATA", Step.IDLE, texts.MYDATA_HEADER),
    ("family_contact", "STOP", Step.IDLE, texts.STOPPED),
    ("update_menu", "HELP", Step.UPDATE_MENU, texts.HELP),
])
def test_a_command_is_handled_as_itself_not_as_the_answer(at: str, typed: str, expected_step: Step,
                                                         first_reply: str) -> None:
    state = states("en")[at]
    t = send(state, typed)
    assert t.state.step is expected_step
    assert texts_of(t)[0].startswith(say("en", first_reply))
    assert t.state.profile == state.profile


def test_mydata_before_consent_leaves_the_consent_question_open() -> None:
    at_consent = states("ar")["consent"]
    t = send(at_consent, "بياناتي")
    assert t.state == at_consent
    assert texts_of(t)[0].splitlines()[0] == gettext_for("ar", texts.MYDATA_HEADER)
    assert send(t.state, "نعم").state.consented


def test_typos_are_commands_except_where_free_text_is_expected() -> None:
    idle = registered("en")
    assert texts_of(send(idle, "HLEP"))[0] == say("en", texts.HELP)
    assert send(idle, "DELTE").state.step is Step.CONFIRM_DELETE
    at_name = states("en")["first_name"]
    t = send(at_name, "Hlep")  # a name, not HELP
    assert t.state.profile.first_name == "Hlep" and t.state.step is Step.NATIONALITY
    at_area = states("en")["area"]
    assert texts_of(send(at_area, "Hlep")) == [say("en", texts.AREA_UNKNOWN)]
    assert texts_of(send(at_area, "HELP"))[0] == say("en", texts.HELP)  # exact words still work there


def test_mydata_of_nobody() -> None:
    t = step(CONFIG, State(), message("MYDATA", hint="fr"))
    assert texts_of(t) == [say("fr", texts.NOT_REGISTERED)] and t.state == State()


# --------------------------------------------------------------------------- anything else, at every step

EXPECTED_FOR_JUNK = {
    Step.LANGUAGE: texts.LANGUAGE_UNKNOWN, Step.CONSENT: texts.CONSENT_UNCLEAR, Step.AREA: texts.AREA_UNKNOWN,
    Step.FIRST_NAME: texts.INVALID_NAME, Step.NATIONALITY: texts.INVALID_NATIONALITY,
    Step.GENDER: texts.INVALID_CHOICE, Step.AGE_BAND: texts.INVALID_CHOICE, Step.HOUSEHOLD: texts.INVALID_NUMBER,
    Step.CONTACT: texts.INVALID_PHONE, Step.IDLE: texts.NOT_UNDERSTOOD, Step.UPDATE_MENU: texts.INVALID_CHOICE,
    Step.CONFIRM_DELETE: texts.CONSENT_UNCLEAR,
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_anything_at_every_step_gets_an_answer_in_the_persons_language(language: str) -> None:
    found = states(language)
    assert {s.step for s in found.values()} == set(Step)  # truly every step
    for label, state in found.items():
        for junk in JUNK:
            t = send(state, junk, hint=language)
            said = texts_of(t)
            assert said and all(text.strip() for text in said), (label, junk)
            assert t.effects == (), (label, junk)
            if state.step is Step.NEW:
                assert said[0] == say(language, texts.LANGUAGE_SUGGESTED), (label, junk)
                continue
            expected = say(language, EXPECTED_FOR_JUNK[state.step])
            if state.step is Step.FIRST_NAME and said[0] != expected:
                # some junk is a plausible name (a line of Hebrew): kept, and the next question follows
                assert t.state.profile.first_name == " ".join(junk.split()), junk
                assert said == [say(language, texts.SAVED if state.editing else texts.ASK_NATIONALITY)]
                continue
            assert said[0] == expected, (label, junk, said)
            assert t.state == state, (label, junk)
            if language != "en":
                assert said[0] != say("en", EXPECTED_FOR_JUNK[state.step])


def test_replies_are_plain_data() -> None:
    t = send(State(), "JOIN")
    assert isinstance(t.replies[0], Reply) and isinstance(t.state, State)
    with pytest.raises(AttributeError):
        t.state.step = Step.IDLE  # type: ignore[misc]
