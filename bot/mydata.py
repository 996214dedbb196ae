"""MYDATA: everything held about the person, in their language."""

from __future__ import annotations

from bot import texts
from bot.countries import country_name
from bot.flow import settled
from bot.i18n import LANGUAGES, gettext_for
from bot.keywords import Intent
from bot.replies import language_for, pack, say
from bot.state import BotConfig, Message, Reply, State, Transition
from domain.vocabulary import Answer, CaseStatus, Need

# Keyed by the stored strings the registry loads (a StrEnum member is its value).
NEED_LABELS: dict[str, str] = {
    Need.MEDICAL: texts.NEED_MEDICAL, Need.SHELTER: texts.NEED_SHELTER, Need.FOOD: texts.NEED_FOOD,
    Need.WATER: texts.NEED_WATER, Need.DOCUMENTS: texts.NEED_DOCUMENTS, Need.EVACUATION: texts.NEED_EVACUATION,
    Need.OTHER: texts.NEED_OTHER,
}
CASE_LABELS: dict[str, str] = {
    CaseStatus.OPEN: texts.CASE_OPEN, CaseStatus.IN_PROGRESS: texts.CASE_IN_PROGRESS,
    CaseStatus.CLOSED: texts.CASE_CLOSED_STATE,
}


def on_mydata(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """MYDATA: the addresses and every profile field, in as few messages as fit."""
    language = language_for(config, state, message)
    lines = [gettext_for(language, texts.MYDATA_HEADER)]
    lines += [f"{channel}: {address}" for channel, address in state.addresses]
    if state.consented or state.profile.language:
        lines += [f"{label}: {value}" for label, value in describe(config, state, language)]
    if not state.addresses and len(lines) == 1:
        return Transition(state, (say(config, language, texts.NOT_REGISTERED),))
    return Transition(settled(state), tuple(Reply(chunk) for chunk in pack(lines)))


def describe(config: BotConfig, state: State, language: str) -> list[tuple[str, str]]:
    """Every profile field with its label, in ``language`` (for MYDATA)."""
    p = state.profile
    none = gettext_for(language, texts.MYDATA_NONE)
    area = config.gazetteer.areas.get(p.area_id) if p.area_id else None
    gender = {"female": texts.GENDER_FEMALE, "male": texts.GENDER_MALE, "other": texts.GENDER_OTHER}
    age = {"0-17": gettext_for(language, texts.AGE_UNDER_18), "60+": gettext_for(language, texts.AGE_60_PLUS)}
    fields = [
        (texts.LABEL_LANGUAGE, LANGUAGES.get(p.language or "", none)),
        (texts.LABEL_AREA, area.name(language) if area else none),
        (texts.LABEL_FIRST_NAME, p.first_name or none),
        (texts.LABEL_NATIONALITY, country_name(p.nationality, language) if p.nationality else none),
        (texts.LABEL_GENDER, gettext_for(language, gender[p.gender]) if p.gender else none),
        (texts.LABEL_AGE_BAND, age.get(p.age_band or "", p.age_band or none)),
        (texts.LABEL_HOUSEHOLD, str(p.household_size) if p.household_size else none),
        (texts.LABEL_CONTACT, p.family_contact or none),
        (texts.LABEL_SHARING, gettext_for(language, texts.VALUE_YES if p.share_family else texts.VALUE_NO)
         + (f" ({LANGUAGES[p.family_language]})" if p.share_family and p.family_language in LANGUAGES else "")),
        (texts.LABEL_LAST_CHECK_IN, _check_in_value(language, state) or none),
        (texts.LABEL_REQUESTS, ", ".join(
            f"{gettext_for(language, NEED_LABELS[c]) if c in NEED_LABELS else '?'}: "
            f"{gettext_for(language, CASE_LABELS.get(status, status))}" for c, status in state.cases) or none),
        (texts.LABEL_CONSENT, state.consent_at.strftime("%Y-%m-%d") if state.consent_at else none),
        (texts.LABEL_MESSAGES, gettext_for(language, texts.VALUE_OFF if state.opted_out else texts.VALUE_ON)),
    ]
    # Employer fields exist only where the operator turned them on and a fieldworker filled them in.
    fields += [(label, value) for label, value in ((texts.LABEL_EMPLOYER, p.employer),
                                                   (texts.LABEL_AGENCY, p.recruitment_agency)) if value]
    return [(gettext_for(language, label), value) for label, value in fields]


def _check_in_value(language: str, state: State) -> str | None:
    if state.last_check_in is None:
        return None
    answer, at = state.last_check_in
    word = texts.VALUE_SAFE if answer == Answer.SAFE else texts.VALUE_NEED_HELP
    return f"{gettext_for(language, word)} ({at.strftime('%Y-%m-%d %H:%M')} UTC)"
