"""HELP, STOP and DELETE, which work at any step, and what a message at idle means."""

from __future__ import annotations

from dataclasses import replace

from bot import texts
from bot.flow import ask, settled, then
from bot.i18n import gettext_for
from bot.keywords import Intent
from bot.registration import start_registration
from bot.replies import language_for, say, yes_no
from bot.state import (
    BotConfig,
    Confirm,
    Erase,
    LinkPhone,
    Message,
    PreferCalls,
    Profile,
    Reply,
    State,
    Step,
    Transition,
)
from domain.vocabulary import ChannelKind

# Channels whose address is a phone number that can also be called.
PHONE_CHANNELS = frozenset({ChannelKind.SMS, ChannelKind.WHATSAPP, ChannelKind.VOICE})


def on_help(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """HELP: the commands, then the pending question again (registration for a newcomer)."""
    language = language_for(config, state, message)
    help_reply = say(config, language, texts.HELP)
    if state.step is Step.NEW:
        return then(help_reply, start_registration(config, state, message))
    if state.step is Step.IDLE:
        return Transition(state, (help_reply,))
    return then(help_reply, ask(config, state, state.step, editing=state.editing, resume=state.resume))


def on_stop(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """STOP: no more messages until START."""
    language = language_for(config, state, message)
    return Transition(replace(settled(state), opted_out=True), (say(config, language, texts.STOPPED),))


def on_delete(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """DELETE: ask for confirmation, remembering the question it interrupts."""
    if message.by_link and state.step is Step.INVITED:  # the invitation page's "erase" button is the confirmation
        return at_confirm_delete(config, state, message, Intent(command="YES"))
    resume = state.resume if state.step is Step.CONFIRM_DELETE else state.step
    return ask(config, state, Step.CONFIRM_DELETE, resume=resume)


def at_confirm_delete(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """DELETE confirmed (everything erased) or cancelled (back where it interrupted)."""
    language = state.language
    if intent.command == "YES" or intent.number == 1:
        return Transition(State(profile=Profile(language=language)), (say(config, language, texts.DELETED),),
                          (Erase(),))
    if intent.command == "NO" or intent.number == 2:
        back = state.resume if state.resume not in (None, Step.CONFIRM_DELETE) else Step.NEW
        if back is Step.NEW and state.registered:
            back = Step.IDLE
        cancelled = say(config, language, texts.DELETE_CANCELLED)
        if back in (Step.NEW, Step.IDLE):
            return Transition(replace(state, step=back, resume=None), (cancelled,))
        return then(cancelled, ask(config, replace(state, resume=None), back, editing=state.editing))
    return Transition(state, (Reply(gettext_for(language, texts.CONSENT_UNCLEAR), yes_no(language, state.step)),))


def at_idle(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """Nothing pending: YES confirms the details, a shared phone number is linked, else not understood."""
    if intent.command == "YES" and state.registered:
        return Transition(state, (say(config, state.language, texts.CONFIRMED),), (Confirm(),))
    if message.contact_phone and state.registered:
        return Transition(state, (say(config, state.language, texts.LINKED),), (LinkPhone(message.contact_phone),))
    return Transition(state, (say(config, state.language, texts.NOT_UNDERSTOOD),))


def on_calls(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """CALLS: alerts and check-ins by phone call from now on (for a phone number)."""
    return _prefer(config, state, message, calls=True)


def on_texts(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """TEXTS: alerts by text message again."""
    return _prefer(config, state, message, calls=False)


def _prefer(config: BotConfig, state: State, message: Message, *, calls: bool) -> Transition:
    language = language_for(config, state, message)
    if not state.registered:
        return Transition(state, (say(config, language, texts.NOT_REGISTERED),))
    if message.channel not in PHONE_CHANNELS:
        return Transition(state, (say(config, language, texts.NOT_UNDERSTOOD),))
    reply = say(config, language, texts.CALLS_ON if calls else texts.TEXTS_ON)
    return Transition(state, (reply,), (PreferCalls(on=calls),))
