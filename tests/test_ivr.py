"""bot.ivr as a table: (state, where the call stands, keys) -> (where it goes, effects); and the voice
channel's pure parts (call statuses, TwiML, configuration)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from beacon import config
from bot import ivr, texts
from bot.i18n import render
from bot.ivr import Call, Node, VoicePoll
from bot.state import (
    BotConfig,
    Confirm,
    Decline,
    DescribeNeed,
    Erase,
    GiveConsent,
    OpenCase,
    PreferCalls,
    Profile,
    RecordCheckIn,
    RecordPollAnswer,
    State,
    Step,
)
from channels.voice import Spoken, call_status, twiml
from domain.areas import Gazetteer
from domain.vocabulary import Answer, Need

AT = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
BOT = BotConfig(gazetteer=Gazetteer.load())
NEW = State()
CHOSE = State(step=Step.CONSENT, profile=Profile(language="fr"))
KNOWN = State(step=Step.IDLE, profile=Profile(language="en", area_id="tripoli"), consented=True, check_in=7)

CASES = [
    # label, state, call, keys, next node (None: the call ends), effects
    ("language picked", NEW, Call(Node.LANGUAGE), "2", Node.CONSENT, ()),
    ("language page 2", NEW, Call(Node.LANGUAGE), "9", Node.LANGUAGE, ()),
    ("wrong key at languages", NEW, Call(Node.LANGUAGE), "#", Node.LANGUAGE, ()),
    ("silence at languages", NEW, Call(Node.LANGUAGE), None, Node.LANGUAGE, ()),
    ("third silence ends the call", NEW, Call(Node.LANGUAGE, repeats=2), None, None, ()),
    ("consent given", CHOSE, Call(Node.CONSENT), "1", Node.AREA, (GiveConsent("2026-11", "fr"),)),
    ("consent refused", CHOSE, Call(Node.CONSENT), "2", None, (Decline(),)),
    ("area picked", CHOSE, Call(Node.AREA), "3", Node.MENU, ()),
    ("safe at the menu", KNOWN, Call(Node.MENU), "1", None, (RecordCheckIn(7, Answer.SAFE), Confirm())),
    ("need help at the menu", KNOWN, Call(Node.MENU), "2", Node.KIND,
     (RecordCheckIn(7, Answer.NEED_HELP), OpenCase(7))),
    ("latest alert", KNOWN, Call(Node.MENU), "3", Node.MENU, ()),
    ("erasing asked", KNOWN, Call(Node.MENU), "4", Node.ERASE, ()),
    ("erasing confirmed", KNOWN, Call(Node.ERASE), "1", None, (Erase(),)),
    ("erasing refused by another key", KNOWN, Call(Node.ERASE), "2", Node.MENU, ()),
    ("erasing refused by silence", KNOWN, Call(Node.ERASE), None, Node.MENU, ()),
    ("calls from now on", KNOWN, Call(Node.MENU), "5", Node.MENU, (PreferCalls(),)),
    ("kind of help", KNOWN, Call(Node.KIND), "6", None, (DescribeNeed(category=Need.EVACUATION),)),
    ("silence at the kind ends with the case open", KNOWN, Call(Node.KIND, repeats=2), None, None, ()),
    ("broadcast answered safe", KNOWN, Call(Node.CHECK_IN, broadcast_id=3), "1", None,
     (RecordCheckIn(3, Answer.SAFE), Confirm())),
    ("broadcast answered need help", KNOWN, Call(Node.CHECK_IN, broadcast_id=3), "2", Node.KIND,
     (RecordCheckIn(3, Answer.NEED_HELP), OpenCase(3))),
]


@pytest.mark.parametrize(("label", "state", "call", "keys", "following", "effects"), CASES,
                         ids=[c[0] for c in CASES])
def test_transitions(label: str, state: State, call: Call, keys: str | None, following: Node | None,
                     effects: tuple[object, ...]) -> None:
    turn = ivr.answer(BOT, state, call, keys, AT)
    assert (turn.next.node if turn.next else None) == following
    assert turn.effects == effects
    assert turn.prompts, "every turn says something"


POLL = VoicePoll(3, "fr", "Partez-vous ?", ("oui", "non", "pas sûr"), ("Are you leaving?", "yes", "no", "not sure"))
POLL_CASES = [
    # label, call, keys, next node, effects
    ("option 2", Call(Node.POLL, broadcast_id=3), "2", None, (RecordPollAnswer(3, 2),)),
    ("not an option", Call(Node.POLL, broadcast_id=3), "4", Node.POLL, ()),
    ("star", Call(Node.POLL, broadcast_id=3), "*", Node.POLL, ()),
    ("silence once", Call(Node.POLL, broadcast_id=3), None, Node.POLL, ()),
    ("silence after the repeat ends the call", Call(Node.POLL, broadcast_id=3, repeats=1), None, None, ()),
    ("safe, then the poll", Call(Node.CHECK_IN, broadcast_id=3), "1", Node.POLL,
     (RecordCheckIn(3, Answer.SAFE), Confirm())),
    ("need help, then the kind", Call(Node.CHECK_IN, broadcast_id=3), "2", Node.KIND,
     (RecordCheckIn(3, Answer.NEED_HELP), OpenCase(3))),
    ("the kind, and no poll after asking for help (as by text)", Call(Node.KIND), "1", None,
     (DescribeNeed(category=Need.MEDICAL),)),
    ("latest alert with its poll", Call(Node.MENU), "3", Node.MENU, ()),
]


@pytest.mark.parametrize(("label", "call", "keys", "following", "effects"), POLL_CASES,
                         ids=[c[0] for c in POLL_CASES])
def test_poll_transitions(label: str, call: Call, keys: str | None, following: Node | None,
                          effects: tuple[object, ...]) -> None:
    turn = ivr.answer(BOT, KNOWN, call, keys, AT, ("fr", "Alerte"), POLL)
    assert (turn.next.node if turn.next else None) == following
    assert turn.effects == effects
    assert turn.prompts
    if following is Node.POLL:
        assert turn.next is not None and turn.next.broadcast_id == 3
        said = [p.text for p in turn.prompts]
        assert said[-4:] == ["Partez-vous ?", *(render("fr", texts.VOICE_OPTION, option=o, number=n)
                                                  for n, o in enumerate(POLL.options, 1))]
        # Where French had no voice, the twins in the default language are spoken.
        assert [p.again_in("en") for p in turn.prompts[-4:]] == [
            "Are you leaving?", "For yes, press 1.", "For no, press 2.", "For not sure, press 3."]


def test_a_poll_only_call_reads_the_alert_then_the_poll_and_never_the_check_in() -> None:
    turn = ivr.answer(BOT, KNOWN, Call(Node.ALERT, broadcast_id=3), None, AT, ("fr", "Alerte"), POLL, check_in=False)
    assert turn.next == Call(Node.POLL, broadcast_id=3)
    assert [p.key for p in turn.prompts] == ["alert", "poll", "poll.1", "poll.2", "poll.3"]
    checked = ivr.answer(BOT, KNOWN, Call(Node.ALERT, broadcast_id=3), None, AT, ("fr", "Alerte"), POLL)
    assert checked.next == Call(Node.CHECK_IN, broadcast_id=3)
    # A poll closed since it was read out (or not the caller's to answer): goodbye, nothing recorded.
    closed = ivr.answer(BOT, KNOWN, Call(Node.POLL, broadcast_id=3), "1", AT)
    assert closed.next is None and closed.effects == ()
    told = ivr.answer(BOT, KNOWN, Call(Node.ALERT, broadcast_id=3), None, AT, ("fr", "Alerte"), None, check_in=False)
    assert told.next is None and [p.key for p in told.prompts] == ["alert", "goodbye"]


def test_a_wrong_key_at_the_poll_says_so_and_reads_the_options_again() -> None:
    turn = ivr.answer(BOT, KNOWN, Call(Node.POLL, broadcast_id=3), "9", AT, None, POLL)
    assert [p.key for p in turn.prompts] == ["invalid", "poll", "poll.1", "poll.2", "poll.3"]
    assert turn.next == Call(Node.POLL, repeats=1, broadcast_id=3)


def test_at_the_menu_an_open_check_in_comes_before_the_poll() -> None:
    open_check_in = ivr.answer(BOT, KNOWN, Call(Node.MENU), "3", AT, ("fr", "Alerte"), POLL)
    assert open_check_in.next == Call(Node.MENU)  # check-in 7 is open: the alert, and the menu again
    free = ivr.answer(BOT, replace(KNOWN, check_in=None), Call(Node.MENU), "3", AT, ("fr", "Alerte"), POLL)
    assert free.next == Call(Node.POLL, broadcast_id=3)
    assert [p.key for p in free.prompts] == ["alert", "poll", "poll.1", "poll.2", "poll.3"]
    answered = ivr.answer(BOT, replace(KNOWN, check_in=3), Call(Node.MENU), "1", AT, ("fr", "Alerte"), POLL)
    assert answered.next == Call(Node.POLL, broadcast_id=3)  # safe for broadcast 3: its poll follows
    assert answered.effects == (RecordCheckIn(3, Answer.SAFE), Confirm())
    other = ivr.answer(BOT, KNOWN, Call(Node.MENU), "1", AT, ("fr", "Alerte"), POLL)
    assert other.next is None  # safe for another broadcast: goodbye


def test_only_a_known_caller_can_reach_the_erasure() -> None:
    turn = ivr.answer(BOT, NEW, Call(Node.ERASE), "1", AT)
    assert turn.effects == () and turn.next == Call(Node.LANGUAGE)


def test_erasing_clears_the_state_as_delete_does() -> None:
    turn = ivr.answer(BOT, KNOWN, Call(Node.ERASE), "1", AT)
    assert turn.state == State(profile=Profile(language="en")) and turn.effects == (Erase(),)
    assert [p.key for p in turn.prompts] == ["deleted", "goodbye"]


def test_a_new_caller_ends_registered_in_the_language_they_picked() -> None:
    state = NEW
    for node, keys in ((Node.LANGUAGE, "5"), (Node.CONSENT, "1"), (Node.AREA, "1")):
        state = ivr.answer(BOT, state, Call(node), keys, AT).state
    assert state.registered and state.language == "ar" and state.step is Step.IDLE


def test_the_second_page_numbers_its_own_options() -> None:
    page = ivr.answer(BOT, NEW, Call(Node.LANGUAGE), "9", AT)
    assert page.next == Call(Node.LANGUAGE, page=1)
    assert ivr.answer(BOT, NEW, page.next, "8", AT).state.language == "am"


@pytest.mark.parametrize(("status", "answered_by", "expected"), [
    ("ringing", None, ("sent", None)), ("in-progress", "human", ("delivered", None)),
    ("completed", "machine_end_beep", ("delivered", "machine")), ("no-answer", None, ("no-answer", "no-answer")),
    ("busy", None, ("busy", "busy")), ("canceled", None, ("failed", "canceled")),
])
def test_call_statuses_are_delivery_states(status: str, answered_by: str | None, expected: tuple[str, str]) -> None:
    assert call_status(status, answered_by) == expected


def test_twiml_gathers_keys_and_repeats_after_a_silence() -> None:
    spoken = [Spoken("ar", "مرحبا", "menu", "Hello"), Spoken("sw", "Habari", "menu", "Hello")]
    xml = twiml(spoken, gather="https://b.example/v?at=menu", default_language="en", recording=lambda lang, key: None)
    assert '<Gather action="https://b.example/v?at=menu" actionOnEmptyResult="false" input="dtmf"' in xml
    assert '<Say language="arb" voice="Polly.Zeina">مرحبا</Say>' in xml
    assert '<Say language="en-US" voice="Polly.Joanna">Hello</Say>' in xml  # Swahili has no voice, no recording
    assert xml.endswith('<Redirect method="POST">https://b.example/v?at=menu</Redirect></Response>')
    ended = twiml(spoken, gather=None, default_language="en", recording=lambda lang, key: f"https://b/{lang}/{key}")
    assert "<Play>https://b/sw/menu</Play>" in ended and ended.endswith("<Hangup /></Response>")


def test_voice_settings_are_checked() -> None:
    base = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "f" * 32, "TWILIO_SMS_FROM": "+15005550006"}
    with pytest.raises(config.ConfigError, match="TWILIO_VOICE_FROM"):
        config.load({**base, "TWILIO_VOICE_FROM": "12345"})
    with pytest.raises(config.ConfigError, match="BEACON_VOICE_MAX_ATTEMPTS"):
        config.load({**base, "BEACON_VOICE_MAX_ATTEMPTS": "0"})
    settings = config.load({**base, "TWILIO_VOICE_FROM": "+15005550007", "BEACON_VOICE_CALLS_PER_SECOND": "2"})
    assert settings.twilio is not None and settings.twilio.voice_calls_per_second == 2.0
