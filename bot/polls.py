"""Polls: a multiple-choice question sent with a broadcast, answered by number or by an option's words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot import texts
from bot.flow import settled
from bot.i18n import gettext_for
from bot.keywords import Intent
from bot.replies import say
from bot.state import BotConfig, Message, OpenPoll, RecordPollAnswer, Reply, State, Step, Transition
from domain.text import normalise

# Poll buttons send "poll:<number>".
POLL_BUTTON = "poll"
# Commands that keep their meaning during a poll: none of them is ever an answer. SAFE, NEED, YES and NO
# are not among them: an option's own words (an option may be "yes" or "OK") answer the poll.
KEPT_COMMANDS = frozenset({"HELP", "STOP", "START", "JOIN", "UPDATE", "LANG", "DELETE", "MYDATA", "STATUS", "CODE"})
# Steps where nothing else waits for a number or a choice: there, a poll may be answered.
ANSWER_STEPS = frozenset({Step.IDLE, Step.FIRST_NAME, Step.NATIONALITY, Step.CONTACT, Step.CHECK_IN_DETAILS})


def localised(by_language: Mapping[str, str], language: str, default: str) -> str:
    """One text of a poll in ``language``, else the default language, else any."""
    return by_language.get(language) or by_language.get(default) or next(iter(by_language.values()))


def open_poll(broadcast_id: int, poll: Mapping[str, object], language: str, default: str) -> OpenPoll:
    """The poll of a broadcast as one person sees it."""
    question = poll["question"]
    options = poll["options"]
    assert isinstance(question, Mapping) and isinstance(options, Sequence)
    return OpenPoll(broadcast_id, localised(question, language, default),
                    tuple(localised(option, language, default) for option in options))


def poll_text(poll: OpenPoll, language: str) -> str:
    """The question, its numbered options and how to answer."""
    lines = [poll.question, *(f"{n} {option}" for n, option in enumerate(poll.options, 1)),
             gettext_for(language, texts.POLL_HINT)]
    return "\n".join(lines)


def poll_buttons(poll: OpenPoll) -> tuple[tuple[str, str], ...]:
    """One button per option."""
    return tuple((f"{n} {option}", f"{POLL_BUTTON}:{n}") for n, option in enumerate(poll.options, 1))


def ask_poll(poll: OpenPoll, language: str) -> Reply:
    """The poll as a reply (after a check-in answer, when the broadcast asked both)."""
    return Reply(poll_text(poll, language), poll_buttons(poll))


def answers_poll(state: State, intent: Intent) -> bool:
    """Whether this message is about the open poll: a number or an option's words, nothing pending before it."""
    if state.poll is None or not state.registered or state.check_in is not None or state.step not in ANSWER_STEPS:
        return False
    if intent.command in KEPT_COMMANDS:
        return False
    return (intent.number is not None and state.step is Step.IDLE) or chosen(state.poll, intent) is not None


def chosen(poll: OpenPoll, intent: Intent) -> int | None:
    """The option a message chooses, by its number or its words (case, accents and digit script ignored)."""
    if intent.number is not None:
        return intent.number if 1 <= intent.number <= len(poll.options) else None
    said = normalise(intent.text)
    if not said:
        return None
    for n, option in enumerate(poll.options, 1):
        if normalise(option) == said:
            return n
    return None


def on_poll_answer(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """An answer to the open poll is recorded (the latest wins); a number that is not an option is asked again."""
    assert state.poll is not None
    number = chosen(state.poll, intent)
    if number is None:
        return Transition(state, (say(config, state.language, texts.POLL_CHOOSE), ask_poll(state.poll, state.language)))
    thanks = say(config, state.language, texts.POLL_ANSWERED, option=state.poll.options[number - 1])
    return Transition(settled(state), (thanks,), (RecordPollAnswer(state.poll.broadcast_id, number),))
