"""An imported person's answer to their invitation: YES registers them, NO or STOP refuses.

The registry puts an imported person at :attr:`Step.INVITED` and queues one invitation
(:data:`texts.INVITATION`); until they answer yes, they get nothing else. STOP and DELETE are commands and
work here as anywhere. A decision on the invitation's web page arrives as the same words (``by_link``):
its consent is recorded as given by link, and its DELETE needs no second confirmation (the page's button is one).
"""

from __future__ import annotations

from dataclasses import replace

from bot import texts
from bot.flow import ask, then
from bot.keywords import Intent
from bot.replies import say
from bot.state import BotConfig, Decline, GiveConsent, Message, Profile, State, Step, Transition

CONSENT_METHOD = "import-invitation"
LINK_METHOD = "invitation-link"  # the YES of the invitation's web page


def at_invited(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """YES: consent recorded, then the area if the list had none; NO: nothing kept but an opt-out marker."""
    language = state.language
    # Words only: a 1 or 2 may answer a check-in sent under vital interests, never consent or refusal.
    if intent.command == "YES":
        consented = replace(state, consented=True, consent_at=message.at, opted_out=False)
        effects = (GiveConsent(config.notice_version, language, LINK_METHOD if message.by_link else CONSENT_METHOD),)
        if consented.profile.area_id is None:
            return replace(ask(config, consented, Step.AREA), effects=effects)
        registered = then(say(config, language, texts.REGISTERED), ask(config, consented, Step.FIRST_NAME))
        return replace(registered, effects=effects)
    if intent.command == "NO":
        forgotten = State(opted_out=True, profile=Profile(language=language))
        return Transition(forgotten, (say(config, language, texts.NO_CONSENT),), (Decline(),))
    return Transition(state, (say(config, language, texts.INVITATION_UNCLEAR),))
