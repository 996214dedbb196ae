"""The conversation as one transition table.

:data:`COMMANDS` (words that work at any step) and :data:`STEPS` (what an answer
means at each step) say which flow handles a message; the flows live in their
own modules. ``step()`` is pure: no I/O, no clock, no randomness; the registry
loads the state and applies the effects.
"""

from __future__ import annotations

import re
from dataclasses import replace

from bot import texts
from bot.checkins import answers_check_in, at_check_in_details, at_check_in_kind, on_need, on_safe
from bot.commands import at_confirm_delete, at_idle, on_calls, on_delete, on_help, on_stop, on_texts
from bot.family import at_family_language, at_share_family, on_code, on_status, status_reply
from bot.flow import Handler, ask
from bot.invitation import at_invited
from bot.keywords import Intent, classify
from bot.mydata import on_mydata
from bot.polls import POLL_BUTTON, answers_poll, on_poll_answer
from bot.profile import (
    at_age_band,
    at_contact,
    at_first_name,
    at_gender,
    at_household,
    at_nationality,
    at_update_menu,
    on_update,
)
from bot.registration import at_area, at_consent, at_language, at_new, chosen_language, on_join, on_lang, on_start
from bot.replies import CHECK_IN_BUTTON, check_in_buttons, language_for, say
from bot.state import BotConfig, Message, State, Step, Transition

# Callers build check-in buttons and STATUS answers through this module, beside step().
__all__ = ["COMMANDS", "STEPS", "check_in_buttons", "status_reply", "step"]

# Buttons send "<step>:<number>", so a press on an old message cannot answer the current question.
BUTTON = re.compile(r"([a-z_]+):(\d{1,2})")
# Steps whose answer is free text: there, command words must be exact (a name may look like a typo of one).
FREE_TEXT = frozenset({Step.FIRST_NAME, Step.NATIONALITY, Step.CONTACT, Step.AREA, Step.CHECK_IN_DETAILS})

COMMANDS: dict[str, Handler] = {
    "SAFE": on_safe,
    "NEED": on_need,
    "CODE": on_code,
    "STATUS": on_status,
    "JOIN": on_join,
    "START": on_start,
    "STOP": on_stop,
    "HELP": on_help,
    "UPDATE": on_update,
    "LANG": on_lang,
    "DELETE": on_delete,
    "MYDATA": on_mydata,
    "CALLS": on_calls,
    "TEXTS": on_texts,
}

STEPS: dict[Step, Handler] = {
    Step.NEW: at_new,
    Step.LANGUAGE: at_language,
    Step.CONSENT: at_consent,
    Step.AREA: at_area,
    Step.FIRST_NAME: at_first_name,
    Step.NATIONALITY: at_nationality,
    Step.GENDER: at_gender,
    Step.AGE_BAND: at_age_band,
    Step.HOUSEHOLD: at_household,
    Step.CONTACT: at_contact,
    Step.IDLE: at_idle,
    Step.UPDATE_MENU: at_update_menu,
    Step.CONFIRM_DELETE: at_confirm_delete,
    Step.SHARE_FAMILY: at_share_family,
    Step.FAMILY_LANGUAGE: at_family_language,
    Step.CHECK_IN_KIND: at_check_in_kind,
    Step.CHECK_IN_DETAILS: at_check_in_details,
    Step.INVITED: at_invited,
}


def step(config: BotConfig, state: State, message: Message) -> Transition:
    """Apply one inbound message to a registrant's state."""
    if message.carrier_opt_out in ("STOP", "START"):
        # The carrier (Twilio Advanced Opt-Out) has already answered; we only record the state.
        return Transition(replace(state, opted_out=message.carrier_opt_out == "STOP"))
    language = state.profile.language if state.step is not Step.NEW else None
    pressed = BUTTON.fullmatch(message.text.strip())
    if pressed:
        return _button(config, state, message, pressed.group(1), int(pressed.group(2)))
    intent = classify(message.text, language, fuzzy=state.step not in FREE_TEXT)
    # An open poll (with no check-in before it) takes numbers and its options' words, never a command like HELP.
    if answers_poll(state, intent):
        return on_poll_answer(config, state, message, intent)
    # A check-in answer first: a 1 or 2 just after a check-in answers it even at the language menu.
    if intent.number in (1, 2) and state.registered and answers_check_in(state):
        return (on_safe if intent.number == 1 else on_need)(config, state, message, intent)
    if state.step is Step.LANGUAGE and chosen_language(state, intent):
        return at_language(config, state, message, intent)
    handler = COMMANDS.get(intent.command or "")
    if handler is not None:
        return handler(config, state, message, intent)
    return STEPS[state.step](config, state, message, intent)


def _button(config: BotConfig, state: State, message: Message, question: str, number: int) -> Transition:
    """A button press: an answer to the question it belongs to, or a stale press that re-asks."""
    intent = Intent(number=number, text=str(number))
    if question == CHECK_IN_BUTTON and number in (1, 2):
        return (on_safe if number == 1 else on_need)(config, state, message, intent)
    if question == POLL_BUTTON and answers_poll(state, intent):
        return on_poll_answer(config, state, message, intent)
    if question == state.step.value and state.step not in (Step.NEW, Step.IDLE):
        # The button names its question: the press answers it, even while a check-in is open.
        return STEPS[state.step](config, state, message, intent)
    if state.step in (Step.NEW, Step.IDLE):
        return Transition(state, (say(config, language_for(config, state, message), texts.NOT_UNDERSTOOD),))
    return ask(config, state, state.step, editing=state.editing, resume=state.resume)
