"""Check-ins: SAFE and NEED (or 1 and 2 after a check-in), then the kind of help and a description."""

from __future__ import annotations

from dataclasses import replace

from bot import texts
from bot.flow import ask, settled
from bot.keywords import Intent
from bot.polls import ask_poll
from bot.replies import language_for, say
from bot.state import (
    BotConfig,
    Confirm,
    DescribeNeed,
    Message,
    OpenCase,
    RecordCheckIn,
    Reply,
    State,
    Step,
    Transition,
)
from domain.text import normalise
from domain.vocabulary import Answer, Need

# The kinds of help, numbered as the need-help question lists them.
NEEDS = tuple(Need)
# Steps where a bare 1 or 2 is a check-in answer: nothing else is pending there.
CHECK_IN_STEPS = frozenset({Step.IDLE, Step.FIRST_NAME, Step.NATIONALITY, Step.CONTACT, Step.CHECK_IN_DETAILS})
# Longer descriptions are cut to this many characters.
MAX_DETAILS = 1000


def answers_check_in(state: State) -> bool:
    """Whether a bare 1 or 2 answers a check-in rather than the pending question."""
    if state.step is Step.IDLE:
        return True
    return state.check_in is not None and (state.check_in_latest or state.step in CHECK_IN_STEPS)


def _answered(state: State) -> State:
    """A check-in answer settles a pending question and closes the open check-in it answers."""
    return replace(settled(state), check_in=None, check_in_latest=False)


def _not_registered(config: BotConfig, state: State, message: Message) -> Transition:
    """A check-in from someone not registered: how to register, or for an invited person how to say yes."""
    unclear = texts.INVITATION_UNCLEAR if state.step is Step.INVITED else texts.NOT_REGISTERED
    return Transition(state, (say(config, language_for(config, state, message), unclear),))


def on_safe(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """SAFE, or 1 after a check-in: recorded, and the details count as confirmed."""
    if not state.registered:
        return _not_registered(config, state, message)
    replies: tuple[Reply, ...] = (say(config, state.language, texts.CHECKIN_SAFE),)
    if state.poll is not None and state.check_in == state.poll.broadcast_id:  # the same broadcast asked a poll too
        replies += (ask_poll(state.poll, state.language),)
    return Transition(_answered(state), replies, (RecordCheckIn(state.check_in, Answer.SAFE), Confirm()))


def on_need(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """NEED, or 2 after a check-in: a case opens, then the kind of help is asked."""
    if not state.registered:
        return _not_registered(config, state, message)
    # The case opens now; the follow-up questions only add detail to it.
    asked = ask(config, _answered(state), Step.CHECK_IN_KIND)
    return replace(asked, effects=(RecordCheckIn(state.check_in, Answer.NEED_HELP), OpenCase(state.check_in)))


def at_check_in_kind(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """The kind of help by number (then a description is asked), or the need in the person's own words."""
    recorded = say(config, state.language, texts.CASE_RECORDED)
    if intent.skip or not normalise(intent.text):  # nothing said (only marks or punctuation)
        return Transition(replace(state, step=Step.IDLE), (recorded,))
    if intent.number is not None:
        if 1 <= intent.number <= len(NEEDS):
            return replace(ask(config, state, Step.CHECK_IN_DETAILS),
                           effects=(DescribeNeed(category=NEEDS[intent.number - 1]),))
        return Transition(state, (say(config, state.language, texts.INVALID_CHOICE),))
    # Words instead of a number: they describe the need in the person's own terms.
    return Transition(replace(state, step=Step.IDLE), (recorded,), (DescribeNeed(details=intent.text[:MAX_DETAILS]),))


def at_check_in_details(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """A description of the need, or 0 to skip it."""
    recorded = say(config, state.language, texts.CASE_RECORDED)
    if intent.skip or not normalise(intent.text):  # nothing said (only marks or punctuation)
        return Transition(replace(state, step=Step.IDLE), (recorded,))
    return Transition(replace(state, step=Step.IDLE), (recorded,), (DescribeNeed(details=intent.text[:MAX_DETAILS]),))
