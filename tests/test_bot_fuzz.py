"""No message can break the conversation: whatever anyone types, at any step and in any language, `step()` answers.

A property test: for every language and every step, with a state a person could really be in there (reached by
talking to the bot, with or without an open check-in), arbitrary Unicode text never raises and every reply says
something.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from functools import cache

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot import texts
from bot.i18n import LANGUAGES, gettext_for
from bot.machine import step
from bot.state import BotConfig, Message, State, Step, Transition
from domain.areas import Gazetteer
from domain.vocabulary import Answer, CaseStatus, ChannelKind, Need

CONFIG = BotConfig(gazetteer=Gazetteer.load(), operator="Red Crescent Tripoli Team")
AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PHONE = "+218912345678"
CONTACT = "+2348012345678"
CHAT = "987654321"
# Characters str.isdigit() accepts and int() refuses.
NOT_DECIMAL = ["\U00010a40", "²", "①", "፩"]


def send(state: State, text: str, *, language: str | None = None, telegram: bool = False,
         payload: str | None = None) -> Transition:
    channel, address = (ChannelKind.TELEGRAM, CHAT) if telegram else (ChannelKind.SMS, PHONE)
    return step(CONFIG, state, Message(text=text, channel=channel, address=address, at=AT, language_hint=language,
                                       payload=payload if telegram else None, nonce="K7Q2M9"))


def converse(state: State, *typed: str, language: str | None = None) -> State:
    for text in typed:
        state = send(state, text, language=language).state
    return state


@cache
def states(language: str) -> dict[Step, tuple[State, ...]]:
    """Every step with the states a person in ``language`` can be in there, each reached by talking to the bot."""
    new = State(addresses=((ChannelKind.SMS, PHONE),))
    at: dict[Step, list[State]] = {s: [] for s in Step}
    at[Step.NEW].append(new)
    state = converse(new, "JOIN", language=language)
    for typed in (language, "1", "1", "Amina", "sd", "1", "2", "3", CONTACT, "1", "1"):
        at[state.step].append(state)
        state = converse(state, typed)
    idle = state
    history = replace(idle, last_check_in=(Answer.NEED_HELP, AT),
                      cases=((Need.MEDICAL, CaseStatus.OPEN), (None, CaseStatus.CLOSED)))
    at[Step.IDLE] += [idle, history]
    for typed in (("LANG",), ("UPDATE",), ("DELETE",), ("NEED",), ("NEED", "1"), ("UPDATE", "2"), ("UPDATE", "3"),
                  ("UPDATE", "8", CONTACT), ("UPDATE", "8", CONTACT, "1"), ("DELETE", "2")):
        state = converse(history, *typed)
        at[state.step].append(state)
    at[Step.NEW].append(converse(idle, "DELETE", "1"))
    # Only an import invites: with and without an area from the list, and after a STOP.
    invited = replace(new, step=Step.INVITED, profile=replace(idle.profile, first_name=None, family_contact=None))
    at[Step.INVITED] += [invited, replace(invited, profile=replace(invited.profile, area_id=None)),
                         replace(invited, opted_out=True)]
    with_check_ins = {s: tuple(found + [replace(f, check_in=7, check_in_latest=latest)
                                        for f in found if f.registered for latest in (True, False)])
                      for s, found in at.items()}
    assert all(with_check_ins.values()), [s for s, found in with_check_ins.items() if not found]
    return with_check_ins


KEYWORDS = sorted({word for language in LANGUAGES for message in texts.KEYWORDS.values()
                   for word in gettext_for(language, message).split("|")})
TEXTS = st.one_of(
    st.text(),
    st.text(st.characters(categories=("N", "Zs", "P")), max_size=6),  # digits of every kind, spaces, punctuation
    st.builds("{} {}".format, st.sampled_from(KEYWORDS), st.text(max_size=12)),
    st.builds("{}:{}".format, st.sampled_from([*(s.value for s in Step), "check_in"]), st.integers(0, 99)),
)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("at", list(Step))
@settings(max_examples=8, deadline=None, database=None)
@given(text=TEXTS, pick=st.integers(min_value=0), telegram=st.booleans(), payload=st.none() | st.text(max_size=64))
@example(text="\U00010a40", pick=0, telegram=False, payload=None)
@example(text="²", pick=1, telegram=False, payload=None)
@example(text="\U00010a40", pick=2, telegram=True, payload="\U00010a40")
@example(text="9" * 5000, pick=0, telegram=False, payload=None)
def test_no_text_breaks_any_step(language: str, at: Step, text: str, pick: int, telegram: bool,
                                 payload: str | None) -> None:
    """``pick`` chooses among the states of the step; ``payload`` is a Telegram deep link's, sent with the text."""
    candidates = states(language)[at]
    state = candidates[pick % len(candidates)]
    transition = send(state, text, telegram=telegram, payload=payload)
    assert all(isinstance(reply.text, str) and reply.text.strip() for reply in transition.replies)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("typed", NOT_DECIMAL)
def test_digits_int_refuses_are_answered_at_every_step(language: str, typed: str) -> None:
    for candidates in states(language).values():
        for state in candidates:
            transition = send(state, typed)
            assert all(reply.text.strip() for reply in transition.replies)
