"""The conversation as data in, data out: `bot.machine.step(config, state, message)` -> Transition.

No mocks and no I/O: a state and a message go in, the next state, the replies and the effects come out, and
the expected replies are the catalogs' own renderings of the message ids in bot/texts.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from functools import cache

import pytest

from bot import texts
from bot.i18n import LANGUAGES, gettext_for, render
from bot.machine import check_in_buttons, status_reply, step
from bot.state import (
    BotConfig,
    Confirm,
    Decline,
    DescribeNeed,
    Erase,
    GiveConsent,
    IssueShareCode,
    LinkPhone,
    LookUpStatus,
    Message,
    OpenCase,
    Profile,
    RecordCheckIn,
    Reply,
    RevokeShareCodes,
    State,
    Step,
    Transition,
)
from domain.areas import Gazetteer
from domain.segments import segments
from domain.text import normalise

CONFIG = BotConfig(gazetteer=Gazetteer.load(), operator="Red Crescent Tripoli Team")
AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PHONE = "+218912345678"  # a Libyan number: Arabic is suggested first
ADDRESSES = (("sms", PHONE),)
CONTACT = "+2348012345678"  # a family member's number
CHAT = "987654321"  # a Telegram chat id
NONCE = "K7Q2M9"  # the share code the service offers with a message
NATIVE_ZERO = {"ar": "٠", "fa": "۰", "ur": "۰", "hi": "०", "ne": "०", "bn": "০"}
JUNK = ["", "   ", "🙂", "🆘🆘", "!!!", "x" * 5000, "asdf qwer zxcv", "؟؟؟ أين أنتم الآن", "שלום עליכם",
        "\u200f\u200e", "٩٩٩", "۸۸۸", "९९९", "৯৯৯", "99999999999999999999", "9" * 5000,
        "\U00010a40", "\U00010a40\U00010a41"]  # Kharoshthi digits: str.isdigit() says yes, int() says no


# --------------------------------------------------------------------------- helpers

def message(text: str, *, hint: str | None = None, carrier: str | None = None, address: str = PHONE,
            channel: str = "sms", payload: str | None = None, contact_phone: str | None = None,
            nonce: str = NONCE) -> Message:
    return Message(text=text, channel=channel, address=address, at=AT, language_hint=hint, carrier_opt_out=carrier,
                   payload=payload, contact_phone=contact_phone, nonce=nonce)


def send(state: State, text: str, **kwargs: str | None) -> Transition:
    return step(CONFIG, state, message(text, **kwargs))  # type: ignore[arg-type]


def converse(state: State, *texts_: str, **kwargs: str | None) -> Transition:
    """Several messages in a row; the transition of the last one."""
    transition = Transition(state)
    for text in texts_:
        transition = send(transition.state, text, **kwargs)
    return transition


def run(state: State, *texts_: str, **kwargs: str | None) -> tuple[Transition, list[object]]:
    """Several messages in a row; the last transition and every effect on the way, in order."""
    transition, effects = Transition(state), []
    for text in texts_:
        transition = send(transition.state, text, **kwargs)
        effects += transition.effects
    return transition, effects


def say(language: str, msg: str, **params: object) -> str:
    """What the catalog says for ``msg`` in ``language`` (the bot's own rendering must equal it)."""
    return render(language, msg, operator=CONFIG.operator, months=CONFIG.retention_months, **params)


def word(language: str, command: str) -> str:
    """A language's own first keyword for ``command``, from its catalog."""
    return gettext_for(language, texts.KEYWORDS[command]).split("|")[0]


def area_order(first: str | None = None) -> tuple[str, ...]:
    """The areas in menu order: a deep link's area first, then the top-level ones."""
    top = CONFIG.gazetteer.top_level
    return (first, *(a for a in top if a != first)) if first else top


def area_menu(language: str, first: str | None = None) -> str:
    gazetteer = CONFIG.gazetteer
    return "\n".join(f"{n} {gazetteer.areas[a].name(language)}" for n, a in enumerate(area_order(first), 1))


def area_question(language: str) -> str:
    return say(language, texts.AREA_QUESTION, menu=area_menu(language))


def yes_no(language: str, at: Step) -> tuple[tuple[str, str], ...]:
    """The two buttons of a yes/no question: the language's own words, the question's name in the data."""
    return ((f"1 {word(language, 'YES')}", f"{at.value}:1"), (f"2 {word(language, 'NO')}", f"{at.value}:2"))


def language_buttons(menu: tuple[str, ...], at: Step = Step.LANGUAGE) -> tuple[tuple[str, str], ...]:
    return tuple((LANGUAGES[code], f"{at.value}:{n}") for n, code in enumerate(menu, 1))


def language_list(menu: tuple[str, ...]) -> str:
    return "\n".join(f"{n} {LANGUAGES[code]}" for n, code in enumerate(menu, 1))


def suggested_menu(first: str) -> tuple[str, ...]:
    return (first, *(code for code in LANGUAGES if code != first))


def texts_of(transition: Transition) -> list[str]:
    return [reply.text for reply in transition.replies]


def registered(language: str, **profile: object) -> State:
    return State(step=Step.IDLE, profile=Profile(language=language, area_id="tripoli", **profile),  # type: ignore
                 consented=True, consent_at=AT, addresses=ADDRESSES)


def open_check_in(state: State, latest: bool = True, broadcast: int = 7) -> State:
    """``state`` with an unanswered check-in; ``latest``: it came after the person's previous message."""
    return replace(state, check_in=broadcast, check_in_latest=latest)


QUESTION = {
    Step.FIRST_NAME: texts.ASK_FIRST_NAME, Step.NATIONALITY: texts.ASK_NATIONALITY, Step.GENDER: texts.ASK_GENDER,
    Step.AGE_BAND: texts.ASK_AGE_BAND, Step.HOUSEHOLD: texts.ASK_HOUSEHOLD, Step.CONTACT: texts.ASK_CONTACT,
}
OPTIONAL = tuple(QUESTION)
NEXT = {**dict(zip(OPTIONAL, OPTIONAL[1:], strict=False)), Step.CONTACT: Step.IDLE}
# what a valid answer leads to: a contact is followed by the sharing question
AFTER_VALID = {**NEXT, Step.CONTACT: Step.SHARE_FAMILY}
FOLLOWING = {**QUESTION, Step.SHARE_FAMILY: texts.ASK_SHARE_FAMILY}


@cache
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
    found["share_family"] = send(found["family_contact"], CONTACT).state
    found["family_language"] = send(found["share_family"], "1").state
    found["update_menu"] = send(t.state, "UPDATE").state
    found["confirm_delete"] = send(t.state, "DELETE").state
    found["language (LANG)"] = send(t.state, "LANG").state
    found["area (UPDATE)"] = converse(t.state, "UPDATE", "2").state
    found["first_name (UPDATE)"] = converse(t.state, "UPDATE", "3").state
    found["household_size (UPDATE)"] = converse(t.state, "UPDATE", "7").state
    found["share_family (UPDATE)"] = converse(t.state, "UPDATE", "8", CONTACT).state
    found["check_in_kind"] = send(t.state, "2").state  # a bare 2 at idle: need help
    found["check_in_details"] = send(found["check_in_kind"], "1").state
    # Only an import puts someone here: invited, with the language and area of the list.
    listed = Profile(language=language, area_id=CONFIG.gazetteer.top_level[0])
    found["invited"] = State(step=Step.INVITED, profile=listed, addresses=ADDRESSES)
    for label, state in found.items():
        assert label.split(" ")[0] == state.step.value, label
        assert state.language == language or label == "new"
    return found


STATE_LABELS = ["new", "language", "consent", "area", *(s.value for s in OPTIONAL), "idle", "share_family",
                "family_language", "update_menu", "confirm_delete", "language (LANG)", "area (UPDATE)",
                "first_name (UPDATE)", "household_size (UPDATE)", "share_family (UPDATE)", "check_in_kind",
                "check_in_details"]


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
    if s is Step.SHARE_FAMILY:
        return [say(language, texts.ASK_SHARE_FAMILY)]
    if s is Step.FAMILY_LANGUAGE:
        return [say(language, texts.ASK_FAMILY_LANGUAGE), language_list(suggested_menu(language))]
    if s is Step.CHECK_IN_KIND:
        return [say(language, texts.CHECKIN_NEED_HELP)]
    if s is Step.CHECK_IN_DETAILS:
        return [say(language, texts.CHECKIN_DETAILS)]
    if s is Step.INVITED:
        return [say(language, texts.INVITATION_UNCLEAR)]
    assert s is Step.IDLE
    return []


# --------------------------------------------------------------------------- full registration, every language

# how each language is picked from the menu: by number, by ISO code or by its own name (in turn)
PICK = {code: ("number", "code", "name")[i % 3] for i, code in enumerate(LANGUAGES)}
# what each language does with the family contact: skips it, gives it and does not share, or shares (in turn)
FAMILY = {code: ("skip", "no", "yes")[i % 3] for i, code in enumerate(LANGUAGES)}


@pytest.mark.parametrize("language", LANGUAGES)
def test_full_registration(language: str) -> None:
    state = State(addresses=ADDRESSES)
    replies: list[tuple[str, str, str]] = []  # (what the bot said, what the catalog says, what English says)

    def expect(transition: Transition, *expected: tuple[str, dict[str, object]] | None) -> None:
        """The replies are these catalog messages (None: a reply that is no catalog text, checked apart)."""
        assert len(transition.replies) == len(expected), texts_of(transition)
        for reply, item in zip(transition.replies, expected, strict=True):
            if item is not None:
                msg, params = item
                replies.append((reply.text, say(language, msg, **params), say("en", msg, **params)))

    # JOIN from a Libyan number: the welcome is in Arabic, the menu lists Arabic first
    t = send(state, "JOIN")
    assert t.state.step is Step.LANGUAGE and t.effects == ()
    menu = suggested_menu("ar")
    assert texts_of(t) == [say("ar", texts.LANGUAGE_SUGGESTED), language_list(menu)]
    assert t.replies[1].buttons == language_buttons(menu)
    assert t.replies[1].buttons[0] == ("العربية", "language:1")

    # the language: by the number shown, its ISO code or its own name
    number = texts_of(t)[1].splitlines().index(f"{menu.index(language) + 1} {LANGUAGES[language]}") + 1
    typed = {"number": str(number), "code": f" {language.upper()} ", "name": LANGUAGES[language].upper()}
    t = send(t.state, typed[PICK[language]])
    assert t.state.step is Step.CONSENT and t.state.language == language
    expect(t, (texts.NOTICE, {}), (texts.CONSENT_QUESTION, {}))
    assert t.replies[1].buttons == ((f"1 {word(language, 'YES')}", "consent:1"),
                                    (f"2 {word(language, 'NO')}", "consent:2"))

    # consent with the language's own YES
    t = send(t.state, word(language, "YES").lower())
    assert t.effects == (GiveConsent(CONFIG.notice_version, language),)
    assert t.state.consented and t.state.consent_at == AT and not t.state.registered
    assert t.state.step is Step.AREA
    expect(t, (texts.AREA_QUESTION, {"menu": area_menu(language)}))
    assert segments(t.replies[0].text).segments <= 3
    assert [label for label, _ in t.replies[0].buttons] == area_menu(language).replace("\n", " ").split(" ")[1::2]
    assert [data for _, data in t.replies[0].buttons] == [f"area:{n}" for n in range(1, len(t.replies[0].buttons) + 1)]

    # the area: by number, or by its name in another language (case, accents and spacing ignored)
    by_number = list(LANGUAGES).index(language) % 2 == 0
    area_id = "misrata" if by_number else ("zawiya" if language == "ar" else "tripoli")
    typed_area = "3" if by_number else ("  ZAOUIA " if language == "ar" else "طرابلس")
    t = send(t.state, typed_area)
    assert t.state.registered and t.state.profile.area_id == area_id and t.effects == ()
    expect(t, (texts.REGISTERED, {}), (texts.ASK_FIRST_NAME, {}))

    # every optional question skipped: with 0 (in the language's own digits too) and with its own SKIP; the
    # contact is skipped too, or given (and then the sharing questions follow)
    skips = ["0", word(language, "SKIP"), NATIVE_ZERO.get(language, "0"), word(language, "SKIP").lower(), "0",
             f" {word(language, 'SKIP')}. "]
    family = FAMILY[language]
    for optional, skip in zip(OPTIONAL, skips, strict=True):
        assert t.state.step is optional
        if optional is Step.CONTACT and family != "skip":
            break
        t = send(t.state, skip)
        nxt = NEXT[optional]
        expect(t, (QUESTION[nxt], {}) if nxt in QUESTION else (texts.PROFILE_DONE, {}))
    expected_profile = Profile(language=language, area_id=area_id)
    if family != "skip":
        t = send(t.state, CONTACT)
        assert t.state.step is Step.SHARE_FAMILY and t.effects == ()
        expect(t, (texts.ASK_SHARE_FAMILY, {}))
        assert t.replies[0].buttons == yes_no(language, Step.SHARE_FAMILY)
        expected_profile = replace(expected_profile, family_contact=CONTACT)
    if family == "no":
        t = send(t.state, word(language, "NO").lower())
        expect(t, (texts.PROFILE_DONE, {}))
    if family == "yes":
        t = send(t.state, word(language, "YES"))
        assert t.state.step is Step.FAMILY_LANGUAGE and t.effects == ()
        own_menu = suggested_menu(language)  # the person's own language is offered first
        expect(t, (texts.ASK_FAMILY_LANGUAGE, {}), None)
        assert texts_of(t)[1] == language_list(own_menu)
        assert t.replies[1].buttons == language_buttons(own_menu, Step.FAMILY_LANGUAGE)
        family_language = "ar" if language == "fr" else "fr"
        t = send(t.state, str(own_menu.index(family_language) + 1))
        expect(t, (texts.PROFILE_DONE, {}))
        expected_profile = replace(expected_profile, share_family=True, family_language=family_language)
    assert t.state.step is Step.IDLE and t.effects == ()
    assert t.state.profile == expected_profile
    assert not any(reply.contact_button for reply in t.replies)  # an SMS number needs no link offer

    # MYDATA, in the language's own word, shows the area by its name in that language
    t = send(t.state, word(language, "MYDATA"))
    assert t.state.profile == expected_profile and t.effects == ()
    lines = "\n".join(texts_of(t)).splitlines()
    area_name = CONFIG.gazetteer.areas[area_id].name(language)
    assert lines[0] == gettext_for(language, texts.MYDATA_HEADER)
    assert f"sms: {PHONE}" in lines
    assert f"{gettext_for(language, texts.LABEL_AREA)}: {area_name}" in lines
    assert f"{gettext_for(language, texts.LABEL_LANGUAGE)}: {LANGUAGES[language]}" in lines
    assert f"{gettext_for(language, texts.LABEL_CONSENT)}: 2026-11-25" in lines
    none = gettext_for(language, texts.MYDATA_NONE)
    contact = CONTACT if family != "skip" else none
    sharing = (f"{gettext_for(language, texts.VALUE_YES)} ({LANGUAGES[expected_profile.family_language]})"
               if expected_profile.family_language else gettext_for(language, texts.VALUE_NO))
    assert f"{gettext_for(language, texts.LABEL_CONTACT)}: {contact}" in lines
    assert f"{gettext_for(language, texts.LABEL_SHARING)}: {sharing}" in lines
    assert f"{gettext_for(language, texts.LABEL_LAST_CHECK_IN)}: {none}" in lines
    assert f"{gettext_for(language, texts.LABEL_REQUESTS)}: {none}" in lines
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
    assert t.replies[0].buttons == (("1 SÍ", "consent:1"), ("2 NO", "consent:2"))


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
    nxt = AFTER_VALID[at]
    assert t.state.step is nxt
    assert texts_of(t) == [say(language, FOLLOWING[nxt] if nxt in FOLLOWING else texts.PROFILE_DONE)]
    if nxt is Step.SHARE_FAMILY:
        assert t.replies[0].buttons == yes_no(language, Step.SHARE_FAMILY)


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
    if field == "family_contact":  # a new contact: asked again whether to share (here: no)
        assert t.state.step is Step.SHARE_FAMILY and t.state.editing is not None
        assert texts_of(t) == [say(language, texts.ASK_SHARE_FAMILY)]
        t = send(t.state, "2")
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

@pytest.mark.parametrize("at", ["consent", "area", "first_name", "gender", "family_contact", "share_family",
                                "family_language", "share_family (UPDATE)", "check_in_kind", "check_in_details"])
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
    assert t.replies[0].buttons == ((f"1 {word(language, 'YES')}", "confirm_delete:1"),
                                    (f"2 {word(language, 'NO')}", "confirm_delete:2"))
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
        asked_again = set(pending_question(language, state)) if state.step is not Step.NEW else set()
        assert not checkins & set(texts_of(t)) - asked_again
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
                                "share_family", "family_language", "update_menu", "area (UPDATE)",
                                "first_name (UPDATE)", "share_family (UPDATE)", "confirm_delete", "check_in_kind",
                                "check_in_details"])
def test_mydata_ends_a_pending_question(at: str) -> None:
    state = states("pt")[at]
    t = send(state, "meus dados")
    assert t.state.step is Step.IDLE and t.state.profile == state.profile and t.effects == ()
    assert t.state.editing is None and t.state.menu == ()
    assert texts_of(t)[0].startswith(gettext_for("pt", texts.MYDATA_HEADER))
    # what comes next is not taken as the answer to the question that was pending (a 3 answers none at idle;
    # a 1 or 2 there is a check-in, see below)
    after = send(t.state, "3")
    assert after.state == t.state and texts_of(after) == [say("pt", texts.NOT_UNDERSTOOD)] and after.effects == ()
    assert send(t.state, "2").effects == (RecordCheckIn(None, "need_help"), OpenCase(None))


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
    ("share_family", "MYDATA", Step.IDLE, texts.MYDATA_HEADER),
    ("family_language", "HELP", Step.FAMILY_LANGUAGE, texts.HELP),
    ("share_family (UPDATE)", "DELETE", Step.CONFIRM_DELETE, texts.DELETE_CONFIRM),
    ("check_in_kind", "STOP", Step.IDLE, texts.STOPPED),
    ("check_in_kind", "UPDATE", Step.UPDATE_MENU, texts.UPDATE_MENU),
    ("check_in_details", "HELP", Step.CHECK_IN_DETAILS, texts.HELP),
    ("check_in_details", "JOIN", Step.IDLE, texts.REGISTERED),
])
def test_a_command_is_handled_as_itself_not_as_the_answer(at: str, typed: str, expected_step: Step,
                                                         first_reply: str) -> None:
    state = states("en")[at]
    t = send(state, typed)
    assert t.state.step is expected_step
    assert texts_of(t)[0].startswith(say("en", first_reply))
    assert t.state.profile == state.profile and t.effects == ()


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
    Step.CONFIRM_DELETE: texts.CONSENT_UNCLEAR, Step.SHARE_FAMILY: texts.CONSENT_UNCLEAR,
    Step.FAMILY_LANGUAGE: texts.LANGUAGE_UNKNOWN, Step.INVITED: texts.INVITATION_UNCLEAR,
}


def junk_about_help(at: Step, junk: str) -> tuple[str, tuple[object, ...], Step]:
    """At the need-help questions words describe the need: the reply, the effects and the next step."""
    said = normalise(junk)
    if not said:  # nothing said: nothing added to the case
        return texts.CASE_RECORDED, (), Step.IDLE
    if at is Step.CHECK_IN_KIND and said.isdecimal():  # a number that is none of the kinds
        return texts.INVALID_CHOICE, (), at
    return texts.CASE_RECORDED, (DescribeNeed(details=junk.strip()[:1000]),), Step.IDLE


@pytest.mark.parametrize("language", LANGUAGES)
def test_anything_at_every_step_gets_an_answer_in_the_persons_language(language: str) -> None:
    found = states(language)
    assert {s.step for s in found.values()} == set(Step)  # truly every step
    for label, state in found.items():
        for junk in JUNK:
            t = send(state, junk, hint=language)
            said = texts_of(t)
            assert said and all(text.strip() for text in said), (label, junk)
            if state.step is Step.NEW:
                assert said[0] == say(language, texts.LANGUAGE_SUGGESTED), (label, junk)
                continue
            if state.step in (Step.CHECK_IN_KIND, Step.CHECK_IN_DETAILS):
                reply, effects, then = junk_about_help(state.step, junk)
                assert (said, t.effects, t.state.step) == ([say(language, reply)], effects, then), (label, junk)
                assert t.state.profile == state.profile
                continue
            assert t.effects == (), (label, junk)
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


# --------------------------------------------------------------------------- the new flows, in several languages

SOME_LANGUAGES = ["en", "ar", "fr", "ru", "hi"]
NEEDS = ("medical", "shelter", "food", "water", "documents", "evacuation", "other")  # in the order of the menu


def native(language: str, number: int) -> str:
    """``number`` in the language's own digits (ASCII where it has none of its own)."""
    zero = NATIVE_ZERO.get(language, "0")
    return "".join(chr(ord(zero) + int(d)) for d in str(number))


def typed_in(language: str, typed: str) -> str:
    """What a person types: "own:SAFE" is the language's own word, "native:2" its own digits, else as is."""
    return " ".join(word(language, w[4:]) if w.startswith("own:") else native(language, int(w[7:]))
                    if w.startswith("native:") else w for w in typed.split(" "))


def on_telegram(state: State, *texts_: str, **kwargs: str | None) -> Transition:
    return converse(state, *texts_, channel="telegram", address=CHAT, **kwargs)


# --------------------------------------------------------------------------- buttons

@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize("label", ["language", "consent", "area", "confirm_delete", "share_family", "family_language",
                                   "language (LANG)", "area (UPDATE)", "share_family (UPDATE)"])
def test_every_button_names_its_question(language: str, label: str) -> None:
    state = states(language)[label]
    asked = send(state, "HELP")  # HELP asks the pending question again, buttons included
    buttons = [button for reply in asked.replies for button in reply.buttons]
    assert buttons
    assert [data for _, data in buttons] == [f"{state.step.value}:{n}" for n in range(1, len(buttons) + 1)]
    if state.step in (Step.CONSENT, Step.CONFIRM_DELETE, Step.SHARE_FAMILY):
        assert tuple(buttons) == yes_no(language, state.step)
    elif state.step in (Step.LANGUAGE, Step.FAMILY_LANGUAGE):
        assert tuple(buttons) == language_buttons(state.menu, state.step)
        assert state.menu == suggested_menu(language)
    else:
        areas = CONFIG.gazetteer.areas
        assert [label for label, _ in buttons] == [areas[a].name(language) for a in area_order()]


@pytest.mark.parametrize("language", SOME_LANGUAGES)
def test_check_in_buttons(language: str) -> None:
    assert check_in_buttons(language) == ((f"1 {gettext_for(language, texts.BUTTON_SAFE)}", "check_in:1"),
                                          (f"2 {gettext_for(language, texts.BUTTON_NEED_HELP)}", "check_in:2"))


# a press on the current question's button, the number on it, and what it did
PRESSES = [
    ("language", 5, lambda lang, t: t.state.language == suggested_menu(lang)[4] and t.state.step is Step.CONSENT),
    ("language", 1, lambda lang, t: t.state.language == lang and t.state.step is Step.CONSENT),
    ("consent", 1, lambda lang, t: t.effects == (GiveConsent(CONFIG.notice_version, lang),)),
    ("consent", 2, lambda lang, t: t.effects == (Decline(),)),
    ("area", 2, lambda lang, t: t.state.profile.area_id == area_order()[1] and t.state.registered),
    ("area", 5, lambda lang, t: t.state.profile.area_id == area_order()[4]),
    ("confirm_delete", 1, lambda lang, t: t.effects == (Erase(),)),
    ("confirm_delete", 2, lambda lang, t: t.state.step is Step.IDLE and t.effects == ()),
    ("share_family", 1, lambda lang, t: t.state.step is Step.FAMILY_LANGUAGE and t.state.profile.share_family),
    ("share_family", 2, lambda lang, t: t.state.step is Step.IDLE and not t.state.profile.share_family),
    ("family_language", 3, lambda lang, t: t.state.profile.family_language == suggested_menu(lang)[2]),
    ("language (LANG)", 2, lambda lang, t: t.state.language == suggested_menu(lang)[1]),
    ("area (UPDATE)", 4, lambda lang, t: t.state.profile.area_id == area_order()[3]),
    ("share_family (UPDATE)", 1, lambda lang, t: t.state.step is Step.FAMILY_LANGUAGE),
]


@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize(("label", "number", "did"), PRESSES)
def test_a_button_press_answers_its_question_like_the_typed_number(language: str, label: str, number: int,
                                                                  did: object) -> None:
    state = states(language)[label]
    pressed = send(state, f"{state.step.value}:{number}")
    assert pressed == send(state, str(number)) == send(state, native(language, number))
    assert pressed.state != state and did(language, pressed)  # type: ignore[operator]


@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize(("label", "number", "did"), [row for row in PRESSES if row[0] not in ("language", "consent",
                                                                                                 "area")])
def test_a_button_press_answers_its_question_even_while_a_check_in_is_open(language: str, label: str, number: int,
                                                                          did: object) -> None:
    """The button names its question: it is no check-in answer, where a typed 1 or 2 would be one."""
    state = open_check_in(states(language)[label])
    pressed = send(state, f"{state.step.value}:{number}")
    assert did(language, pressed)  # type: ignore[operator]
    assert not any(isinstance(e, RecordCheckIn | OpenCase | Confirm) for e in pressed.effects)
    if number in (1, 2):
        typed = send(state, str(number))
        assert typed.effects[0] == RecordCheckIn(7, "safe" if number == 1 else "need_help")


# the question pending, and a press on a button of another (older) message
STALE = [
    ("language", "consent:1"), ("language", "family_language:2"), ("consent", "language:5"), ("consent", "area:2"),
    ("area", "consent:1"), ("area", "language:3"), ("first_name", "consent:2"), ("gender", "area:2"),
    ("household_size", "language:4"), ("family_contact", "share_family:1"), ("confirm_delete", "consent:1"),
    ("confirm_delete", "share_family:1"), ("share_family", "confirm_delete:1"), ("share_family", "consent:1"),
    ("family_language", "language:3"), ("update_menu", "area:1"), ("area (UPDATE)", "language:1"),
    ("language (LANG)", "family_language:2"), ("share_family (UPDATE)", "confirm_delete:2"),
    ("check_in_kind", "area:1"), ("check_in_kind", "check_in:3"), ("check_in_details", "share_family:2"),
]


@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize(("label", "data"), STALE)
def test_a_stale_button_press_asks_the_current_question_again(language: str, label: str, data: str) -> None:
    state = states(language)[label]
    t = send(state, data)
    assert t.state == state and t.effects == ()
    assert texts_of(t) == pending_question(language, state)
    assert all(d.startswith(f"{state.step.value}:") for reply in t.replies for _, d in reply.buttons)


@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize(("label", "data"), [
    ("idle", "consent:1"), ("idle", "language:2"), ("idle", "area:3"), ("idle", "confirm_delete:1"),
    ("idle", "check_in:3"), ("new", "language:1"), ("new", "consent:1"), ("new", "area:2"),
])
def test_a_stale_button_press_at_idle_or_before_anything_is_not_understood(language: str, label: str,
                                                                          data: str) -> None:
    state = states(language)[label]
    t = send(state, data, hint=language)
    assert t.state == state and t.effects == ()
    assert texts_of(t) == [say(language, texts.NOT_UNDERSTOOD)]


# --------------------------------------------------------------------------- check-ins

SAFE_EFFECTS, NEED_EFFECTS = "safe", "need_help"
# the state, what is typed, the check-in open (None, "open": before the person's last message, "latest": after it),
# and whether it is a check-in answer ("safe", "need_help") or else the answer to the pending question (its reply)
CHECK_INS: list[tuple[str, str, str | None, str]] = [
    ("idle", "1", None, SAFE_EFFECTS),
    ("idle", "2", None, NEED_EFFECTS),
    ("idle", "native:1", None, SAFE_EFFECTS),
    ("idle", "native:2", "open", NEED_EFFECTS),
    ("idle", "own:SAFE", None, SAFE_EFFECTS),
    ("idle", "own:NEED", None, NEED_EFFECTS),
    ("idle", "SAFE", "open", SAFE_EFFECTS),
    ("idle", "SOS", "open", NEED_EFFECTS),
    ("idle", "NEED", "latest", NEED_EFFECTS),
    ("idle", "1", "latest", SAFE_EFFECTS),
    # at the free-text questions a digit is no answer, so it is a check-in answer once a check-in is open
    ("first_name", "1", "open", SAFE_EFFECTS),
    ("nationality", "2", "open", NEED_EFFECTS),
    ("family_contact", "1", "open", SAFE_EFFECTS),
    ("first_name (UPDATE)", "2", "open", NEED_EFFECTS),
    ("check_in_details", "1", "open", SAFE_EFFECTS),
    # a check-in that came after the person's last message takes 1 and 2 at any question
    ("gender", "1", "latest", SAFE_EFFECTS),
    ("age_band", "native:1", "latest", SAFE_EFFECTS),
    ("household_size", "2", "latest", NEED_EFFECTS),
    ("confirm_delete", "1", "latest", SAFE_EFFECTS),
    ("update_menu", "2", "latest", NEED_EFFECTS),
    ("share_family", "1", "latest", SAFE_EFFECTS),
    ("family_language", "2", "latest", NEED_EFFECTS),
    ("language (LANG)", "1", "latest", SAFE_EFFECTS),
    ("area (UPDATE)", "2", "latest", NEED_EFFECTS),
    ("share_family (UPDATE)", "1", "latest", SAFE_EFFECTS),
    ("check_in_kind", "1", "latest", SAFE_EFFECTS),
    # the words are check-in answers at any step
    ("gender", "own:SAFE", None, SAFE_EFFECTS),
    ("confirm_delete", "own:NEED", "open", NEED_EFFECTS),
    ("update_menu", "own:SAFE", None, SAFE_EFFECTS),
    # ... but an older check-in leaves numbered questions their numbers, and no check-in leaves every digit alone
    ("gender", "1", "open", texts.ASK_AGE_BAND),
    ("household_size", "2", "open", texts.ASK_CONTACT),
    ("confirm_delete", "1", "open", texts.DELETED),
    ("update_menu", "2", "open", texts.AREA_QUESTION),
    ("share_family", "1", "open", texts.ASK_FAMILY_LANGUAGE),
    ("language (LANG)", "1", "open", texts.LANGUAGE_SET),
    ("check_in_kind", "1", "open", texts.CHECKIN_DETAILS),
    ("first_name", "1", None, texts.INVALID_NAME),
    ("check_in_details", "2", None, texts.CASE_RECORDED),
    ("share_family", "2", None, texts.PROFILE_DONE),
]


@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize(("label", "typed", "check_in", "outcome"), CHECK_INS)
def test_check_ins(language: str, label: str, typed: str, check_in: str | None, outcome: str) -> None:
    plain = states(language)[label]
    state = open_check_in(plain, latest=check_in == "latest") if check_in else plain
    broadcast = 7 if check_in else None
    t = send(state, typed_in(language, typed))
    if outcome == SAFE_EFFECTS:
        assert t.effects == (RecordCheckIn(broadcast, "safe"), Confirm())
        assert texts_of(t) == [say(language, texts.CHECKIN_SAFE)]
        assert t.state.step is Step.IDLE
    elif outcome == NEED_EFFECTS:
        assert t.effects == (RecordCheckIn(broadcast, "need_help"), OpenCase(broadcast))
        assert texts_of(t) == [say(language, texts.CHECKIN_NEED_HELP)]  # the case is open; what kind of help?
        assert t.state.step is Step.CHECK_IN_KIND
    else:
        assert not any(isinstance(e, RecordCheckIn | OpenCase) for e in t.effects)
        if outcome == texts.AREA_QUESTION:
            assert texts_of(t)[0] == area_question(language)
        else:
            assert texts_of(t)[0] == (gettext_for if outcome == texts.LANGUAGE_SET else say)(language, outcome)
        # exactly what the same digit does with no check-in open (an erasure keeps nothing, the check-in neither)
        without = send(plain, typed_in(language, typed))
        assert t.replies == without.replies and t.effects == without.effects
        if Erase() not in t.effects:
            without = replace(without, state=replace(without.state, check_in=state.check_in,
                                                     check_in_latest=state.check_in_latest))
        assert t.state == without.state
        return
    # a check-in answer ends the pending question (and is no answer to it) and closes the check-in
    assert t.state.profile == state.profile and t.state.consented
    assert (t.state.editing, t.state.resume, t.state.menu) == (None, None, ())
    assert (t.state.check_in, t.state.check_in_latest) == (None, False)


@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize("at", ["gender", "household_size", "confirm_delete", "update_menu", "share_family",
                                "family_language", "first_name (UPDATE)", "area (UPDATE)", "language (LANG)"])
def test_a_check_in_answer_ends_the_pending_question(language: str, at: str) -> None:
    state = open_check_in(states(language)[at])
    t, effects = run(state, "1", "3")
    assert effects == [RecordCheckIn(7, "safe"), Confirm()]  # nothing erased, nothing changed
    assert t.state.step is Step.IDLE and t.state.profile == state.profile and t.state.language == language
    assert texts_of(t) == [say(language, texts.NOT_UNDERSTOOD)]  # the 3 answers no question any more


@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize("at", ["idle", "first_name", "gender", "confirm_delete", "check_in_kind",
                                "check_in_details"])
@pytest.mark.parametrize("latest", [True, False])
def test_help_during_an_open_check_in_is_not_a_check_in(language: str, at: str, latest: bool) -> None:
    state = open_check_in(states(language)[at], latest=latest)
    for typed in ("HELP", "help", "INFO", word(language, "HELP"), word(language, "HELP").lower() + "?"):
        t = send(state, typed)
        assert t.effects == (), typed
        assert texts_of(t) == [say(language, texts.HELP), *pending_question(language, state)], typed
        assert t.state == state  # the check-in is still open, the question still pending


@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize("typed", ["own:SAFE", "own:NEED", "SAFE", "SOS", "own:CODE", "CODE", "check_in:1",
                                   "check_in:2"])
@pytest.mark.parametrize("at", ["new", "language", "consent", "area"])
def test_check_ins_and_codes_need_a_registration(language: str, typed: str, at: str) -> None:
    state = states(language)[at]
    t = send(state, typed_in(language, typed), hint=language)
    assert t.state == state and t.effects == ()
    assert texts_of(t) == [say(language, texts.NOT_REGISTERED)]


@pytest.mark.parametrize("language", SOME_LANGUAGES)
def test_digits_before_registering_answer_the_registration(language: str) -> None:
    t = send(State(addresses=ADDRESSES), "1", hint=language)
    assert t.state.step is Step.LANGUAGE and t.effects == ()
    at_area = states(language)["area"]
    t = send(at_area, "2")  # consented, no area yet: the area menu's 2, no check-in
    assert t.state.profile.area_id == area_order()[1] and t.effects == ()


# --------------------------------------------------------------------------- need help, end to end

# how the need is said, the answers to the two questions (None: not asked), the detail effects in order, the
# replies after the need
NEED_FLOWS: list[tuple[str, str, str | None, list[object], list[str]]] = [
    ("2", "1", "My leg is broken, near the port", [DescribeNeed(category="medical"),
                                                    DescribeNeed(details="My leg is broken, near the port")],
     [texts.CHECKIN_DETAILS, texts.CASE_RECORDED]),
    ("own:NEED", "native:3", "  two children, no milk  ", [DescribeNeed(category="food"),
                                                            DescribeNeed(details="two children, no milk")],
     [texts.CHECKIN_DETAILS, texts.CASE_RECORDED]),
    ("SOS", "0", None, [], [texts.CASE_RECORDED]),
    ("NEED", "own:SKIP", None, [], [texts.CASE_RECORDED]),
    ("2", "7", "0", [DescribeNeed(category="other")], [texts.CHECKIN_DETAILS, texts.CASE_RECORDED]),
    ("check_in:2", "6", "own:SKIP", [DescribeNeed(category="evacuation")],
     [texts.CHECKIN_DETAILS, texts.CASE_RECORDED]),
    ("native:2", "الماء مقطوع منذ يومين", None, [DescribeNeed(details="الماء مقطوع منذ يومين")],
     [texts.CASE_RECORDED]),
    ("2", "no water since Monday", None, [DescribeNeed(details="no water since Monday")], [texts.CASE_RECORDED]),
]


@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize("latest", [True, False])
@pytest.mark.parametrize(("need", "kind", "details", "described", "then"), NEED_FLOWS)
def test_need_help_end_to_end(language: str, latest: bool, need: str, kind: str, details: str | None,
                              described: list[object], then: list[str]) -> None:
    state = open_check_in(states(language)["idle"], latest=latest)
    messages = [typed_in(language, m) for m in (need, kind, details) if m is not None]
    t, effects = Transition(state), []
    said: list[str] = []
    for text in messages:
        t = send(t.state, text)
        effects += t.effects
        said += texts_of(t)
    # the case opens at once, tied to the check-in; the answers only add detail to it
    assert effects == [RecordCheckIn(7, "need_help"), OpenCase(7), *described]
    assert said == [say(language, texts.CHECKIN_NEED_HELP), *(say(language, m) for m in then)]
    assert t.state.step is Step.IDLE and t.state.profile == state.profile and t.state.check_in is None


@pytest.mark.parametrize("language", SOME_LANGUAGES)
def test_the_kinds_of_help_are_the_numbers_in_the_question(language: str) -> None:
    at_kind = states(language)["check_in_kind"]
    english = say("en", texts.CHECKIN_NEED_HELP)
    for number, need in enumerate(NEEDS, 1):
        assert f"{number} {need.capitalize()}" in english  # the menu the person reads
        for typed in (str(number), native(language, number), f"check_in_kind:{number}"):
            t = send(at_kind, typed)
            assert t.effects == (DescribeNeed(category=need),), typed
            assert t.state.step is Step.CHECK_IN_DETAILS and texts_of(t) == [say(language, texts.CHECKIN_DETAILS)]
    for typed in ("8", "99", native(language, 9)):
        t = send(at_kind, typed)
        assert t.state == at_kind and t.effects == () and texts_of(t) == [say(language, texts.INVALID_CHOICE)]


def test_a_long_description_is_cut() -> None:
    t = send(states("en")["check_in_details"], "x" * 5000)
    assert t.effects == (DescribeNeed(details="x" * 1000),)


# --------------------------------------------------------------------------- sharing with the family contact

# the answers after the contact, what is kept (sharing, language), the replies after the contact
FAMILY_FLOWS: list[tuple[tuple[str, ...], bool, str | None, list[str]]] = [
    (("1", "2"), True, "second", [texts.ASK_FAMILY_LANGUAGE, texts.PROFILE_DONE]),
    (("own:YES", "ar"), True, "ar", [texts.ASK_FAMILY_LANGUAGE, texts.PROFILE_DONE]),
    (("share_family:1", "family_language:1"), True, "own", [texts.ASK_FAMILY_LANGUAGE, texts.PROFILE_DONE]),
    (("YES", "Русский"), True, "ru", [texts.ASK_FAMILY_LANGUAGE, texts.PROFILE_DONE]),
    (("2",), False, None, [texts.PROFILE_DONE]),
    (("own:NO",), False, None, [texts.PROFILE_DONE]),
    (("share_family:2",), False, None, [texts.PROFILE_DONE]),
]


@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize(("answers", "shared", "family_language", "then"), FAMILY_FLOWS)
def test_sharing_with_the_family_contact(language: str, answers: tuple[str, ...], shared: bool,
                                         family_language: str | None, then: list[str]) -> None:
    at_contact = states(language)["family_contact"]
    t = send(at_contact, CONTACT)
    assert t.state.step is Step.SHARE_FAMILY and texts_of(t) == [say(language, texts.ASK_SHARE_FAMILY)]
    said: list[str] = []
    for answer in answers:
        t = send(t.state, typed_in(language, answer))
        assert t.effects == ()
        said += texts_of(t)[:1]
    expected = {"second": suggested_menu(language)[1], "own": language}.get(family_language or "", family_language)
    assert said == [say(language, m) for m in then]
    assert t.state.step is Step.IDLE
    assert t.state.profile == replace(at_contact.profile, family_contact=CONTACT, share_family=shared,
                                      family_language=expected)


@pytest.mark.parametrize("language", SOME_LANGUAGES)
def test_sharing_questions_explain_unclear_answers(language: str) -> None:
    at_share = states(language)["share_family"]
    # a yes/no like consent: a skip is no answer to it either
    for typed in ("maybe", "3", "0", word(language, "SKIP"), f"1 {word(language, 'YES')}"):
        t = send(at_share, typed)
        assert t.state == at_share and t.effects == (), typed
        assert texts_of(t) == [say(language, texts.CONSENT_UNCLEAR)]
        assert t.replies[0].buttons == yes_no(language, Step.SHARE_FAMILY)
    at_language = states(language)["family_language"]
    for typed in ("99", "0", "Klingon"):
        t = send(at_language, typed)
        assert t.state == at_language and t.effects == (), typed
        assert texts_of(t) == [say(language, texts.LANGUAGE_UNKNOWN), language_list(suggested_menu(language))]
        assert t.replies[1].buttons == language_buttons(suggested_menu(language), Step.FAMILY_LANGUAGE)


@pytest.mark.parametrize("language", SOME_LANGUAGES)
def test_skipping_the_contact_skips_the_sharing_questions(language: str) -> None:
    t = send(states(language)["family_contact"], "0")
    assert t.state.step is Step.IDLE and texts_of(t) == [say(language, texts.PROFILE_DONE)]
    assert not t.state.profile.share_family and t.state.profile.family_language is None


@pytest.mark.parametrize("language", SOME_LANGUAGES)
def test_update_the_contact_and_share_with_it(language: str) -> None:
    before = registered(language, first_name="Amina")
    t, effects = run(before, "UPDATE", "8", CONTACT, "1")
    assert texts_of(t) == [say(language, texts.ASK_FAMILY_LANGUAGE), language_list(suggested_menu(language))]
    t = send(t.state, "fr")
    assert texts_of(t) == [say(language, texts.SAVED)] and effects == [] and t.effects == ()  # not PROFILE_DONE
    assert t.state.step is Step.IDLE and t.state.editing is None
    assert t.state.profile == replace(before.profile, family_contact=CONTACT, share_family=True, family_language="fr")
    # changing the contact again asks again; "no" stops the sharing
    t = converse(t.state, "UPDATE", "8", "+2348099999999", "2")
    assert texts_of(t) == [say(language, texts.SAVED)]
    assert t.state.profile.family_contact == "+2348099999999" and not t.state.profile.share_family
    # skipping the contact while editing changes nothing and asks nothing
    t2 = converse(t.state, "UPDATE", "8", "0")
    assert texts_of(t2) == [say(language, texts.SAVED)] and t2.state.profile == t.state.profile


# --------------------------------------------------------------------------- share codes and STATUS

# what is typed, and what it does: issue the code, revoke codes, look a code up, or say the code is not valid
CODES = [
    ("own:CODE", "issue", None),
    ("CODE", "issue", None),
    ("own:CODE off", "revoke", None),
    ("CODE OFF", "revoke", None),
    ("own:CODE own:STOP", "revoke", None),  # CODE ARRÊT, КОД СТОП, رمز توقف, कोड बंद
    ("CODE 0", "revoke", None),
    ("own:STATUS k7q2-m9", "look up", "K7Q2-M9"),
    ("STATUS  ab12 cd", "look up", "AB12CD"),
    ("own:STATUS", "unknown", None),
    ("STATUS", "unknown", None),
]


@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize(("typed", "does", "code"), CODES)
@pytest.mark.parametrize("at", ["idle", "gender", "share_family"])
def test_share_codes_and_status(language: str, typed: str, does: str, code: str | None, at: str) -> None:
    state = states(language)[at]
    t = send(state, typed_in(language, typed))
    # a command ends the pending question
    assert t.state == replace(state, step=Step.IDLE, menu=(), editing=None, resume=None)
    if does == "issue":
        assert t.effects == (IssueShareCode(NONCE),)
        assert texts_of(t) == [say(language, texts.SHARE_CODE, code=NONCE)] and NONCE in texts_of(t)[0]
    elif does == "revoke":
        assert t.effects == (RevokeShareCodes(),) and texts_of(t) == [say(language, texts.SHARE_CODE_REVOKED)]
    elif does == "look up":
        assert t.effects == (LookUpStatus(code),) and t.replies == ()  # type: ignore[arg-type]  # the service answers
    else:
        assert t.effects == () and texts_of(t) == [say(language, texts.STATUS_UNKNOWN_CODE)]


def test_the_share_code_is_the_one_the_service_offers() -> None:
    idle = states("en")["idle"]
    assert send(idle, "CODE", nonce="ZX81QP").effects == (IssueShareCode("ZX81QP"),)
    assert send(idle, "CODE", nonce="AB12CD") == send(idle, "CODE", nonce="AB12CD")  # no randomness of its own


@pytest.mark.parametrize("language", SOME_LANGUAGES)
def test_status_never_starts_a_registration(language: str) -> None:
    newcomer = State(addresses=ADDRESSES)
    t = send(newcomer, f"{word(language, 'STATUS')} k7q2m9", hint=language)
    assert t.state == newcomer and t.effects == (LookUpStatus("K7Q2M9"),) and t.replies == ()
    t = send(newcomer, word(language, "STATUS"), hint=language)
    assert t.state == newcomer and t.effects == ()
    assert texts_of(t) == [say(language, texts.STATUS_UNKNOWN_CODE)]
    at_consent = states(language)["consent"]  # in the middle of registering: the question stays
    t = send(at_consent, "STATUS K7Q2M9")
    assert t.state == at_consent and t.effects == (LookUpStatus("K7Q2M9"),)
    # the next message from the newcomer is a first message like any other
    assert send(newcomer, "hello", hint=language).state.step is Step.LANGUAGE


@pytest.mark.parametrize("language", SOME_LANGUAGES)
def test_status_reply(language: str) -> None:
    found = "Amina checked in as safe at 12:00."
    assert status_reply(language, "found", found) == Reply(found)
    assert status_reply(language, "unknown") == Reply(gettext_for(language, texts.STATUS_UNKNOWN_CODE))
    assert status_reply(language, "found") == Reply(gettext_for(language, texts.STATUS_UNKNOWN_CODE))
    assert status_reply(language, "too_many") == Reply(gettext_for(language, texts.STATUS_TOO_MANY))


# --------------------------------------------------------------------------- Telegram: phone link and deep links

def on_telegram_registered(language: str, *addresses: tuple[str, str]) -> State:
    return replace(registered(language), addresses=(("telegram", CHAT), *addresses))


@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize("text", ["", PHONE])  # the channel sends no text; the registry stores the number as text
def test_a_shared_phone_number_is_linked(language: str, text: str) -> None:
    state = on_telegram_registered(language)
    t = send(state, text, channel="telegram", address=CHAT, contact_phone=PHONE)
    assert t.effects == (LinkPhone(PHONE),) and t.state == state
    assert texts_of(t) == [say(language, texts.LINKED)]
    # without a registration there is nothing to link it to
    for at in ("new", "consent"):
        before = states(language)[at]
        assert LinkPhone(PHONE) not in send(before, text, channel="telegram", address=CHAT,
                                            contact_phone=PHONE).effects


@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize(("contact", "answers"), [("0", ()), (CONTACT, ("2",)), (CONTACT, ("1", "3"))])
def test_telegram_registration_ends_with_an_offer_to_link_a_phone(language: str, contact: str,
                                                                   answers: tuple[str, ...]) -> None:
    start = State(addresses=(("telegram", CHAT),))
    t = on_telegram(start, "START", language, "1", "1", "0", "0", "0", "0", "0", contact, *answers, hint=language)
    assert t.state.step is Step.IDLE and t.state.registered
    assert texts_of(t) == [say(language, texts.PROFILE_DONE), say(language, texts.LINK_OFFER)]
    assert [reply.contact_button for reply in t.replies] == [None, say(language, texts.CONTACT_BUTTON)]
    assert t.replies[1].contact_button.startswith("📱") and t.replies[1].buttons == ()
    # then sharing the number links it
    linked = send(t.state, "", channel="telegram", address=CHAT, contact_phone=PHONE)
    assert linked.effects == (LinkPhone(PHONE),)
    # a person whose phone number we already hold is not asked for it
    held = replace(start, addresses=(("telegram", CHAT), ("whatsapp", PHONE)))
    t = on_telegram(held, "START", language, "1", "1", "0", "0", "0", "0", "0", contact, *answers, hint=language)
    assert texts_of(t) == [say(language, texts.PROFILE_DONE)] and not t.replies[0].contact_button
    # nor when only editing
    t = on_telegram(on_telegram_registered(language), "UPDATE", "8", contact, *answers)
    assert texts_of(t) == [say(language, texts.SAVED)]


@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize(("payload", "area_id"), [
    ("misrata", "misrata"), ("MISRATA", "misrata"), ("مصراتة", "misrata"), ("zaouia", "zawiya"),
    ("tajoura", "tajoura"), ("atlantis", None), (None, None),
])
@pytest.mark.parametrize("start", ["START", "/start"])
def test_a_deep_link_puts_its_area_first(language: str, payload: str | None, area_id: str | None,
                                         start: str) -> None:
    t = send(State(addresses=(("telegram", CHAT),)), start, channel="telegram", address=CHAT, payload=payload,
             hint=language)
    assert t.state.step is Step.LANGUAGE and t.state.area_hint == area_id
    t = on_telegram(t.state, language, "1")
    assert t.state.step is Step.AREA
    assert texts_of(t) == [say(language, texts.AREA_QUESTION, menu=area_menu(language, area_id))]
    names = [CONFIG.gazetteer.areas[a].name(language) for a in area_order(area_id)]
    assert t.replies[0].buttons == tuple((name, f"area:{n}") for n, name in enumerate(names, 1))
    t = on_telegram(t.state, "1")
    assert t.state.registered and t.state.profile.area_id == (area_id or CONFIG.gazetteer.top_level[0])


# --------------------------------------------------------------------------- MYDATA: sharing, check-ins, requests

@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize(("shared", "last", "cases"), [
    (True, ("need_help", AT), (("medical", "open"), ("food", "closed"), ("water", "in_progress"))),
    (False, ("safe", datetime(2026, 12, 1, 8, 5, tzinfo=UTC)), (("evacuation", "open"),)),
    (False, None, ()),
])
def test_mydata_lists_sharing_check_ins_and_help_requests(language: str, shared: bool,
                                                          last: tuple[str, datetime] | None,
                                                          cases: tuple[tuple[str, str], ...]) -> None:
    state = replace(registered(language, family_contact=CONTACT, share_family=shared, family_language="ar"),
                    last_check_in=last, cases=cases)
    t = send(state, word(language, "MYDATA"))
    assert t.state == state and t.effects == ()
    lines = "\n".join(texts_of(t)).splitlines()

    def line(label: str, value: str) -> str:
        return f"{gettext_for(language, label)}: {value}"

    none = gettext_for(language, texts.MYDATA_NONE)
    sharing = f"{gettext_for(language, texts.VALUE_YES)} ({LANGUAGES['ar']})" if shared else gettext_for(
        language, texts.VALUE_NO)
    assert line(texts.LABEL_SHARING, sharing) in lines
    assert line(texts.LABEL_CONTACT, CONTACT) in lines
    if last is None:
        assert line(texts.LABEL_LAST_CHECK_IN, none) in lines
    else:
        answer = texts.VALUE_SAFE if last[0] == "safe" else texts.VALUE_NEED_HELP
        when = last[1].strftime("%Y-%m-%d %H:%M")
        assert line(texts.LABEL_LAST_CHECK_IN, f"{gettext_for(language, answer)} ({when} UTC)") in lines
    kinds = {"medical": texts.NEED_MEDICAL, "food": texts.NEED_FOOD, "water": texts.NEED_WATER,
             "evacuation": texts.NEED_EVACUATION}
    states_ = {"open": texts.CASE_OPEN, "closed": texts.CASE_CLOSED_STATE, "in_progress": texts.CASE_IN_PROGRESS}
    requests = ", ".join(f"{gettext_for(language, kinds[c])}: {gettext_for(language, states_[s])}" for c, s in cases)
    assert line(texts.LABEL_REQUESTS, requests or none) in lines
    assert all(segments(text).segments <= 3 for text in texts_of(t))


# --------------------------------------------------------------------------- a number typed with its label

@pytest.mark.parametrize("language", SOME_LANGUAGES)
@pytest.mark.parametrize(("at", "typed", "reply"), [
    ("consent", "1 own:YES", texts.CONSENT_UNCLEAR),
    ("consent", "2 own:NO", texts.CONSENT_UNCLEAR),
    ("consent", "1 YES", texts.CONSENT_UNCLEAR),
    ("confirm_delete", "1 own:YES", texts.CONSENT_UNCLEAR),
    ("share_family", "2 own:NO", texts.CONSENT_UNCLEAR),
    ("idle", "1 own:YES", texts.NOT_UNDERSTOOD),
])
def test_a_number_typed_with_its_label_is_asked_again(language: str, at: str, typed: str, reply: str) -> None:
    """Decided: "1 YES" is neither the number nor the word; the question is asked again and nothing is recorded."""
    state = states(language)[at]
    t = send(state, typed_in(language, typed))
    assert t.state == state and t.effects == ()
    assert texts_of(t) == [say(language, reply)]


@pytest.mark.parametrize("language", SOME_LANGUAGES)
def test_a_check_in_button_label_typed_out_is_not_understood(language: str) -> None:
    """Decided as above: only the digit, the word or the button itself answers a check-in."""
    state = open_check_in(states(language)["idle"])
    for label, _ in check_in_buttons(language):
        t = send(state, label)
        assert t.state == state and t.effects == () and texts_of(t) == [say(language, texts.NOT_UNDERSTOOD)]


def test_replies_are_plain_data() -> None:
    t = send(State(), "JOIN")
    assert isinstance(t.replies[0], Reply) and isinstance(t.state, State)
    with pytest.raises(AttributeError):
        t.state.step = Step.IDLE  # type: ignore[misc]


# --------------------------------------------------------------------------- invited by an import

INVITED = State(step=Step.INVITED, profile=Profile(language="fr", area_id="tripoli"), addresses=ADDRESSES)


def test_an_invited_person_says_yes_in_their_own_words_and_goes_on_to_the_optional_questions() -> None:
    t = send(INVITED, "oui")
    assert t.effects == (GiveConsent(CONFIG.notice_version, "fr", "import-invitation"),)
    assert t.state.registered and t.state.step is Step.FIRST_NAME
    assert texts_of(t) == [say("fr", texts.REGISTERED), say("fr", texts.ASK_FIRST_NAME)]


def test_an_invited_person_without_an_area_is_asked_for_it_after_yes() -> None:
    t = send(replace(INVITED, profile=Profile(language="fr")), "YES")
    assert t.state.consented and t.state.step is Step.AREA and not t.state.registered


def test_an_invited_persons_no_keeps_nothing_and_digits_neither_consent_nor_refuse() -> None:
    t = send(INVITED, "non")
    assert t.effects == (Decline(),) and t.state.opted_out and t.state.profile.area_id is None
    for digit in ("1", "2"):
        t = send(INVITED, digit)
        assert (t.effects, t.state) == ((), INVITED)
        assert texts_of(t) == [say("fr", texts.INVITATION_UNCLEAR)]
    assert send(INVITED, "STOP").state.opted_out
