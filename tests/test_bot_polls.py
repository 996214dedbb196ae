"""Polls in the conversation, as data in and data out: the open poll is part of the state."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot import texts
from bot.i18n import LANGUAGES, gettext_for, render
from bot.machine import step
from bot.polls import POLL_BUTTON
from bot.state import OpenPoll, RecordCheckIn, RecordPollAnswer, State, Step
from domain.vocabulary import Answer
from tests.test_bot_machine import CONFIG, message, open_check_in, registered

POLL = OpenPoll(9, "Do you plan to leave?", ("yes", "no", "not sure"))
FR_POLL = OpenPoll(9, "Prévoyez-vous de partir ?", ("oui", "non", "pas sûr"))


def with_poll(state: State, poll: OpenPoll = POLL) -> State:
    return replace(state, poll=poll)


@pytest.mark.parametrize(("language", "poll", "text", "option"), [
    ("en", POLL, "2", 2), ("en", POLL, "NOT SURE", 3), ("en", POLL, " yes ", 1),
    ("ar", POLL, "١", 1), ("fa", POLL, "۳", 3), ("hi", POLL, "२", 2),
    ("fr", FR_POLL, "pas sur", 3), ("fr", FR_POLL, "Oui", 1), ("fr", FR_POLL, "NON", 2),
])
def test_an_answer_by_number_in_any_script_or_by_the_option_words(language: str, poll: OpenPoll, text: str,
                                                                 option: int) -> None:
    done = step(CONFIG, with_poll(registered(language), poll), message(text))
    assert done.effects == (RecordPollAnswer(9, option),)
    assert done.replies[0].text == render(language, texts.POLL_ANSWERED, option=poll.options[option - 1])


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_help_and_other_commands_are_never_an_answer(language: str) -> None:
    state = with_poll(registered(language))
    for command in ("HELP", "MYDATA", "STOP"):
        done = step(CONFIG, state, message(gettext_for(language, texts.KEYWORDS[command]).split("|")[0]))
        assert not any(isinstance(e, RecordPollAnswer) for e in done.effects), command


def test_a_poll_answer_is_never_a_check_in() -> None:
    done = step(CONFIG, with_poll(registered("en")), message("1"))
    assert not any(isinstance(e, RecordCheckIn) for e in done.effects)


def test_a_number_that_is_no_option_shows_the_options_again() -> None:
    done = step(CONFIG, with_poll(registered("en")), message("7"))
    assert done.effects == ()
    assert done.replies[0].text == gettext_for("en", texts.POLL_CHOOSE)
    assert "3 not sure" in done.replies[1].text and done.replies[1].buttons[2] == ("3 not sure", f"{POLL_BUTTON}:3")


def test_an_open_check_in_comes_first_then_the_poll_is_asked() -> None:
    state = with_poll(open_check_in(registered("en"), broadcast=9))
    safe = step(CONFIG, state, message("1"))
    assert safe.effects[0] == RecordCheckIn(9, Answer.SAFE)
    assert "1 yes" in safe.replies[-1].text
    answered = step(CONFIG, replace(safe.state, poll=POLL), message("2"))
    assert answered.effects == (RecordPollAnswer(9, 2),)


def test_a_button_press_answers_and_a_pending_question_keeps_its_numbers() -> None:
    assert step(CONFIG, with_poll(registered("en")), message("poll:3")).effects == (RecordPollAnswer(9, 3),)
    asking_gender = with_poll(replace(registered("en"), step=Step.GENDER))
    assert not any(isinstance(e, RecordPollAnswer) for e in step(CONFIG, asking_gender, message("2")).effects)
