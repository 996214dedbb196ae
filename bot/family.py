"""The family contact: whether and in which language they learn the check-in status; share codes and STATUS."""

from __future__ import annotations

from dataclasses import replace

from bot import texts
from bot.flow import after_answer, ask, settled
from bot.i18n import gettext_for
from bot.keywords import Intent, keyword_table
from bot.registration import chosen_language
from bot.replies import language_for, language_list, say, yes_no
from bot.state import (
    BotConfig,
    IssueShareCode,
    LookUpStatus,
    Message,
    Reply,
    RevokeShareCodes,
    State,
    Step,
    Transition,
)


def at_share_family(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """Whether the contact may learn the check-in status: yes asks their language."""
    if intent.command == "YES" or intent.number == 1:
        return ask(config, replace(state, profile=replace(state.profile, share_family=True)), Step.FAMILY_LANGUAGE,
                   editing=state.editing)
    if intent.command == "NO" or intent.number == 2:
        return after_answer(config, replace(state, profile=replace(state.profile, share_family=False)), message)
    language = state.language
    return Transition(state, (Reply(gettext_for(language, texts.CONSENT_UNCLEAR), yes_no(language, state.step)),))


def at_family_language(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """The language the contact is written to in."""
    chosen = chosen_language(state, intent)
    if chosen is None:
        return Transition(state, (say(config, state.language, texts.LANGUAGE_UNKNOWN),
                                  language_list(state.menu, state.step)))
    return after_answer(config, replace(state, profile=replace(state.profile, family_language=chosen)), message)


def on_code(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """CODE: a fresh share code (the service's nonce); CODE OFF revokes it."""
    if not state.registered:
        return Transition(state, (say(config, language_for(config, state, message), texts.NOT_REGISTERED),))
    now_idle = settled(state)
    rest = intent.rest.replace(" ", "")  # normalised: CODE ARRÊT arrives as "arret"
    if rest in ("off", "0") or keyword_table(state.language).get(rest) == "STOP":
        return Transition(now_idle, (say(config, state.language, texts.SHARE_CODE_REVOKED),), (RevokeShareCodes(),))
    return Transition(now_idle, (say(config, state.language, texts.SHARE_CODE, code=message.nonce),),
                      (IssueShareCode(message.nonce),))


def on_status(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """STATUS CODE: the service looks the code up and answers (see :func:`status_reply`)."""
    code = intent.rest.replace(" ", "").upper()
    if not code:
        return Transition(settled(state), (say(config, language_for(config, state, message),
                                                texts.STATUS_UNKNOWN_CODE),))
    return Transition(settled(state), (), (LookUpStatus(code),))


def status_reply(language: str, outcome: str, text: str | None = None) -> Reply:
    """The answer to STATUS CODE, once the service has looked the code up (``text`` when found)."""
    if outcome == "found" and text:
        return Reply(text)
    return Reply(gettext_for(language, texts.STATUS_TOO_MANY if outcome == "too_many" else texts.STATUS_UNKNOWN_CODE))
