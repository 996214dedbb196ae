"""Registration: the language, consent to the notice and the area; JOIN, START and LANG lead here."""

from __future__ import annotations

from dataclasses import replace

from bot import texts
from bot.flow import FOLLOW_UPS, OPTIONAL, after_answer, ask, settled, then
from bot.i18n import LANGUAGES, gettext_for
from bot.keywords import Intent
from bot.replies import language_for, language_list, language_menu, say, yes_no
from bot.state import BotConfig, Decline, GiveConsent, Message, Profile, Reply, State, Step, Transition
from domain.text import normalise


def start_registration(config: BotConfig, state: State, message: Message) -> Transition:
    """Offer the languages, the one the channel or phone suggests first (a source's own, if it has one)."""
    source = message.source
    if source is not None:
        # The person came through an outreach source: remember it, and offer its language and area first.
        state = replace(state, source_id=source.id, area_hint=source.area_id or state.area_hint)
    suggested = source.language if source is not None and source.language in LANGUAGES else None
    suggested = suggested or language_for(config, state, message)
    menu = language_menu(suggested)
    fresh = replace(state, step=Step.LANGUAGE, menu=menu, editing=None, resume=None,
                    profile=replace(state.profile, language=suggested))
    return Transition(fresh, (say(config, suggested, texts.LANGUAGE_SUGGESTED), language_list(menu)))


def on_join(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """JOIN: register, or say the person already is."""
    if state.registered:
        return Transition(replace(state, step=Step.IDLE), (say(config, state.language, texts.REGISTERED),))
    return start_registration(config, state, message)


def on_start(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """START (a deep link's area hint kept): messages resume, or registration begins."""
    hinted = config.gazetteer.find(message.payload) if message.payload else None
    if hinted is not None:
        state = replace(state, area_hint=hinted.id)
    if state.opted_out and state.registered:
        return Transition(replace(settled(state), opted_out=False), (say(config, state.language, texts.RESUMED),))
    return on_join(config, replace(state, opted_out=False), message, intent)


def on_lang(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """LANG: the language menu, remembering the question it interrupts."""
    resume = state.resume if state.step is Step.LANGUAGE else state.step
    return ask(config, state, Step.LANGUAGE, editing=state.editing, resume=resume)


def at_new(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """A newcomer's first words: registration begins (a source counts only when named after JOIN or START)."""
    return start_registration(config, state, replace(message, source=None))


def at_language(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """The language picked: on to consent, the area, or back where LANG interrupted."""
    chosen = chosen_language(state, intent)
    if chosen is None:
        return Transition(state, (say(config, state.language, texts.LANGUAGE_UNKNOWN), language_list(state.menu)))
    state = replace(state, profile=replace(state.profile, language=chosen), menu=())
    if state.registered:
        # Back to the question LANG interrupted (keeping an UPDATE edit), else to idle.
        confirmed = Reply(gettext_for(chosen, texts.LANGUAGE_SET))
        resume = state.resume
        if resume is not None and resume in (Step.AREA, *OPTIONAL, *FOLLOW_UPS):
            return then(confirmed, ask(config, replace(state, resume=None), resume, editing=state.editing))
        return Transition(replace(state, step=Step.IDLE, resume=None, editing=None), (confirmed,))
    if state.consented:
        return then(Reply(gettext_for(chosen, texts.LANGUAGE_SET)), ask(config, state, Step.AREA))
    return ask(config, state, Step.CONSENT)


def chosen_language(state: State, intent: Intent) -> str | None:
    """The language a menu answer names: its number, ISO code or own name."""
    if intent.number is not None:
        return state.menu[intent.number - 1] if 1 <= intent.number <= len(state.menu) else None
    typed = normalise(intent.text).replace(" ", "")
    for code, name in LANGUAGES.items():
        if typed in (code, normalise(name).replace(" ", "")):
            return code
    return None


def at_consent(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """Consent given (on to the area) or refused (nothing kept)."""
    language = state.language
    if intent.command == "YES" or intent.number == 1:
        consented = replace(state, consented=True, consent_at=message.at, opted_out=False)
        return replace(ask(config, consented, Step.AREA),
                       effects=(GiveConsent(config.notice_version, language),))
    if intent.command == "NO" or intent.number == 2:
        forgotten = State(opted_out=True, profile=Profile(language=language))
        return Transition(forgotten, (say(config, language, texts.NO_CONSENT),), (Decline(),))
    return Transition(state, (Reply(gettext_for(language, texts.CONSENT_UNCLEAR), yes_no(language, state.step)),))


def at_area(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """The area, by menu number or name: registration is complete."""
    area_id: str | None = None
    if intent.number is not None and 1 <= intent.number <= len(state.menu):
        area_id = state.menu[intent.number - 1]
    elif intent.number is None:
        found = config.gazetteer.find(intent.text)
        area_id = found.id if found else None
    if area_id is None:
        return Transition(state, (say(config, state.language, texts.AREA_UNKNOWN),))
    was_registered = state.registered
    state = replace(state, profile=replace(state.profile, area_id=area_id), menu=())
    if state.editing or was_registered:
        return after_answer(config, replace(state, editing="area"))
    return then(say(config, state.language, texts.REGISTERED), ask(config, state, Step.FIRST_NAME))
