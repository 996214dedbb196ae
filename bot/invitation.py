"""An imported person's answer to their invitation: YES registers them, NO or STOP refuses.

The registry puts an imported person at :attr:`Step.INVITED` and queues one invitation
(:data:`texts.INVITATION`); until they answer yes, they get nothing else. STOP and DELETE are commands and
work here as anywhere.
"""

from __future__ import annotations

from dataclasses import replace

from bot import texts
from bot.flow import ask, then
from bot.keywords import Intent
from bot.replies import say
from bot.state import BotConfig, Decline, GiveConsent, Message, Profile, State, Step, Transition

CONSENT_METHOD = "import-invitation"


def at_invited(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """YES: consent recorded, then the area if the list had none; NO: nothing kept but an opt-out marker."""
    language = state.language
    # Words only: a 1 or 2 may answer a check-in sent under vital interests, never consent or refusal.
    if intent.command == "YES":
        consented = replace(state, consented=True, consent_at=message.at, opted_out=False)
        effects = (GiveConsent(config.notice_version, language, CONSENT_METHOD),)
        if consented.profile.area_id is None:
            return replace(ask(config, consented, Step.AREA), effects=effects)
        registered = then(say(config, language, texts.REGISTERED), ask(config, consented, Step.FIRST_NAME))
        return replace(registered, effects=effects)
    if intent.command == "NO":
        forgotten = State(opted_out=True, profile=Profile(language=language))
        return Transition(forgotten, (say(config, language, texts.NO_CONSENT),), (Decline(),))
    return Transition(state, (say(config, language, texts.INVITATION_UNCLEAR),))
