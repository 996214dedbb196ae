"""What every flow shares: the handler shape, the order of the questions, asking one and moving on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from bot import texts
from bot.i18n import gettext_for
from bot.keywords import Intent
from bot.replies import area_prompt, language_list, language_menu, say, yes_no
from bot.state import BotConfig, Message, Reply, State, Step, Transition
from domain.vocabulary import ChannelKind

Handler = Callable[[BotConfig, State, Message, Intent], Transition]

# The optional questions, in the order they are asked after registration.
OPTIONAL = (Step.FIRST_NAME, Step.NATIONALITY, Step.GENDER, Step.AGE_BAND, Step.HOUSEHOLD, Step.CONTACT)
# UPDATE menu numbers -> the step that asks for that field.
UPDATE_FIELDS = (Step.LANGUAGE, Step.AREA, *OPTIONAL)
# Questions that follow an answer (the contact's sharing, the kind of help): LANG asks them again too.
FOLLOW_UPS = (Step.SHARE_FAMILY, Step.FAMILY_LANGUAGE, Step.CHECK_IN_KIND, Step.CHECK_IN_DETAILS)
QUESTIONS = {
    Step.FIRST_NAME: texts.ASK_FIRST_NAME,
    Step.NATIONALITY: texts.ASK_NATIONALITY,
    Step.GENDER: texts.ASK_GENDER,
    Step.AGE_BAND: texts.ASK_AGE_BAND,
    Step.HOUSEHOLD: texts.ASK_HOUSEHOLD,
    Step.CONTACT: texts.ASK_CONTACT,
}


def ask(config: BotConfig, state: State, step: Step, *, editing: str | None = None,
        resume: Step | None = None) -> Transition:
    """Move to ``step`` and ask its question."""
    language = state.language
    if step is Step.LANGUAGE:
        menu = language_menu(language)
        return Transition(replace(state, step=step, menu=menu, editing=editing, resume=resume),
                          (say(config, language, texts.LANGUAGE_MENU), language_list(menu)))
    if step is Step.CONSENT:
        return Transition(replace(state, step=step, menu=(), editing=None, resume=None), (
            say(config, language, texts.NOTICE, months=config.retention_months),
            Reply(gettext_for(language, texts.CONSENT_QUESTION), yes_no(language, step)),
        ))
    if step is Step.AREA:
        reply, menu = area_prompt(config, language, state.area_hint)
        return Transition(replace(state, step=step, menu=menu, editing=editing), (reply,))
    if step is Step.UPDATE_MENU:
        menu_reply = say(config, language, texts.UPDATE_MENU)
        return Transition(replace(state, step=step, menu=(), editing=None), (menu_reply,))
    if step is Step.CONFIRM_DELETE:
        return Transition(replace(state, step=step, resume=resume), (
            Reply(gettext_for(language, texts.DELETE_CONFIRM), yes_no(language, step)),))
    if step is Step.SHARE_FAMILY:
        return Transition(replace(state, step=step, menu=(), editing=editing), (
            Reply(gettext_for(language, texts.ASK_SHARE_FAMILY), yes_no(language, step)),))
    if step is Step.FAMILY_LANGUAGE:
        menu = language_menu(language)
        return Transition(replace(state, step=step, menu=menu, editing=editing),
                          (say(config, language, texts.ASK_FAMILY_LANGUAGE), language_list(menu, step)))
    if step is Step.CHECK_IN_KIND:
        return Transition(replace(state, step=step, menu=(), editing=None), (
            say(config, language, texts.CHECKIN_NEED_HELP),))
    if step is Step.CHECK_IN_DETAILS:
        return Transition(replace(state, step=step, menu=(), editing=None), (
            say(config, language, texts.CHECKIN_DETAILS),))
    if step is Step.INVITED:
        return Transition(replace(state, step=step, menu=(), editing=None, resume=None),
                          (say(config, language, texts.INVITATION_UNCLEAR),))
    if step in QUESTIONS:
        return Transition(replace(state, step=step, menu=(), editing=editing),
                          (say(config, language, QUESTIONS[step]),))
    return Transition(replace(state, step=step, menu=(), editing=None, resume=None))


def after_answer(config: BotConfig, state: State, message: Message | None = None) -> Transition:
    """Where to go once a field is answered: back to idle when editing, else the next optional question."""
    if state.editing:
        saved = say(config, state.language, texts.SAVED)
        return Transition(replace(state, step=Step.IDLE, editing=None, menu=()), (saved,))
    index = OPTIONAL.index(state.step) if state.step in OPTIONAL else len(OPTIONAL) - 1
    if index + 1 < len(OPTIONAL):
        return ask(config, state, OPTIONAL[index + 1])
    done = Transition(replace(state, step=Step.IDLE, menu=()), (say(config, state.language, texts.PROFILE_DONE),))
    if message is not None and message.channel == ChannelKind.TELEGRAM and not _has_phone(state):
        offer = Reply(gettext_for(state.language, texts.LINK_OFFER),
                      contact_button=gettext_for(state.language, texts.CONTACT_BUTTON))
        return replace(done, replies=(*done.replies, offer))
    return done


def _has_phone(state: State) -> bool:
    return any(channel != ChannelKind.TELEGRAM for channel, _ in state.addresses)


def then(first: Reply, transition: Transition) -> Transition:
    """``transition`` with ``first`` said before its own replies."""
    return replace(transition, replies=(first, *transition.replies))


def settled(state: State) -> State:
    """A command ends a registered person's pending question or edit: they are back at idle."""
    if state.registered and state.step is not Step.IDLE:
        return replace(state, step=Step.IDLE, menu=(), editing=None, resume=None)
    return state
