"""The conversation as one transition table.

Everything that moves a registrant from one step to the next lives in this
module: :data:`COMMANDS` (words that work at any step) and :data:`STEPS` (what
an answer means at each step). ``step()`` is pure: no I/O, no clock, no
randomness; the registry loads the state and applies the effects.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from bot import texts
from bot.countries import country_name, find_country, normalise_phone, phone_region, suggest_language
from bot.i18n import LANGUAGES, gettext_for, render
from bot.keywords import Intent, classify, keyword_table
from bot.state import (
    BotConfig,
    Confirm,
    Decline,
    DescribeNeed,
    Erase,
    GiveConsent,
    IssueShareCode,
    LinkPhone,
    LookUpStatus,
    Message,
    OpenCase,
    Profile,
    RecordCheckIn,
    Reply,
    RevokeShareCodes,
    State,
    Step,
    Transition,
)
from domain.segments import segments
from domain.text import normalise

Handler = Callable[[BotConfig, State, Message, Intent], Transition]

GENDERS = ("female", "male", "other")
AGE_BANDS = ("0-17", "18-29", "30-44", "45-59", "60+")
# The optional questions, in the order they are asked after registration.
OPTIONAL = (Step.FIRST_NAME, Step.NATIONALITY, Step.GENDER, Step.AGE_BAND, Step.HOUSEHOLD, Step.CONTACT)
# UPDATE menu numbers -> the step that asks for that field.
UPDATE_FIELDS = (Step.LANGUAGE, Step.AREA, *OPTIONAL)
# Questions that follow an answer (the contact's sharing, the kind of help): LANG asks them again too.
FOLLOW_UPS = (Step.SHARE_FAMILY, Step.FAMILY_LANGUAGE, Step.CHECK_IN_KIND, Step.CHECK_IN_DETAILS)
# Steps whose answer is free text: there, command words must be exact (a name may look like a typo of one).
FREE_TEXT = frozenset({Step.FIRST_NAME, Step.NATIONALITY, Step.CONTACT, Step.AREA, Step.CHECK_IN_DETAILS})
NEEDS = ("medical", "shelter", "food", "water", "documents", "evacuation", "other")
NEED_LABELS = dict(zip(NEEDS, (texts.NEED_MEDICAL, texts.NEED_SHELTER, texts.NEED_FOOD, texts.NEED_WATER,
                               texts.NEED_DOCUMENTS, texts.NEED_EVACUATION, texts.NEED_OTHER), strict=True))
CASE_LABELS = {"open": texts.CASE_OPEN, "in_progress": texts.CASE_IN_PROGRESS, "closed": texts.CASE_CLOSED_STATE}
# Buttons send "<step>:<number>", so a press on an old message cannot answer the current question.
BUTTON = re.compile(r"([a-z_]+):(\d{1,2})")
CHECK_IN_BUTTON = "check_in"
# Steps where a bare 1 or 2 is a check-in answer: nothing else is pending there.
CHECK_IN_STEPS = frozenset({Step.IDLE, Step.FIRST_NAME, Step.NATIONALITY, Step.CONTACT, Step.CHECK_IN_DETAILS})
MAX_HOUSEHOLD = 50
# No reply may take more than three SMS segments.
MAX_SEGMENTS = 3


def fit_segments(text: str) -> bool:
    """Whether ``text`` fits the reply size limit."""
    return segments(text).segments <= MAX_SEGMENTS


# --------------------------------------------------------------------------- rendering

def _say(config: BotConfig, language: str, message: str, **params: object) -> Reply:
    return Reply(render(language, message, operator=config.operator, **params) if "{" in message else
                 gettext_for(language, message))


def _word(language: str, command: str) -> str:
    """The first keyword of ``command`` in ``language``, as shown on a button."""
    return gettext_for(language, texts.KEYWORDS[command]).split("|")[0]


def _yes_no(language: str, step: Step) -> tuple[tuple[str, str], ...]:
    return ((f"1 {_word(language, 'YES')}", f"{step.value}:1"), (f"2 {_word(language, 'NO')}", f"{step.value}:2"))


def check_in_buttons(language: str) -> tuple[tuple[str, str], ...]:
    """The two check-in answers as buttons, in ``language``."""
    return ((f"1 {gettext_for(language, texts.BUTTON_SAFE)}", f"{CHECK_IN_BUTTON}:1"),
            (f"2 {gettext_for(language, texts.BUTTON_NEED_HELP)}", f"{CHECK_IN_BUTTON}:2"))


def _language_menu(state: State, suggested: str) -> tuple[str, ...]:
    return (suggested, *(code for code in LANGUAGES if code != suggested))


def _language_list(menu: tuple[str, ...], step: Step = Step.LANGUAGE) -> Reply:
    return Reply(
        "\n".join(f"{n} {LANGUAGES[code]}" for n, code in enumerate(menu, 1)),
        buttons=tuple((LANGUAGES[code], f"{step.value}:{n}") for n, code in enumerate(menu, 1)),
    )


def _area_prompt(config: BotConfig, language: str, hint: str | None) -> tuple[Reply, tuple[str, ...]]:
    """The area question with as many numbered areas as fit in three SMS segments (a deep link's first)."""
    gazetteer = config.gazetteer
    shown: list[str] = []
    candidates = (hint, *(a for a in gazetteer.top_level if a != hint)) if hint else gazetteer.top_level
    for area_id in candidates:
        trial = [*shown, area_id]
        menu = "\n".join(f"{n} {gazetteer.areas[a].name(language)}" for n, a in enumerate(trial, 1))
        if not fit_segments(render(language, texts.AREA_QUESTION, menu=menu)):
            break
        shown = trial
    menu = "\n".join(f"{n} {gazetteer.areas[a].name(language)}" for n, a in enumerate(shown, 1))
    buttons = tuple((gazetteer.areas[a].name(language), f"{Step.AREA.value}:{n}") for n, a in enumerate(shown, 1))
    return Reply(render(language, texts.AREA_QUESTION, menu=menu), buttons), tuple(shown)


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
        menu = _language_menu(state, language)
        return Transition(replace(state, step=step, menu=menu, editing=editing, resume=resume),
                          (_say(config, language, texts.LANGUAGE_MENU), _language_list(menu)))
    if step is Step.CONSENT:
        return Transition(replace(state, step=step, menu=(), editing=None, resume=None), (
            _say(config, language, texts.NOTICE, months=config.retention_months),
            Reply(gettext_for(language, texts.CONSENT_QUESTION), _yes_no(language, step)),
        ))
    if step is Step.AREA:
        reply, menu = _area_prompt(config, language, state.area_hint)
        return Transition(replace(state, step=step, menu=menu, editing=editing), (reply,))
    if step is Step.UPDATE_MENU:
        menu_reply = _say(config, language, texts.UPDATE_MENU)
        return Transition(replace(state, step=step, menu=(), editing=None), (menu_reply,))
    if step is Step.CONFIRM_DELETE:
        return Transition(replace(state, step=step, resume=resume), (
            Reply(gettext_for(language, texts.DELETE_CONFIRM), _yes_no(language, step)),))
    if step is Step.SHARE_FAMILY:
        return Transition(replace(state, step=step, menu=(), editing=editing), (
            Reply(gettext_for(language, texts.ASK_SHARE_FAMILY), _yes_no(language, step)),))
    if step is Step.FAMILY_LANGUAGE:
        menu = _language_menu(state, language)
        return Transition(replace(state, step=step, menu=menu, editing=editing),
                          (_say(config, language, texts.ASK_FAMILY_LANGUAGE), _language_list(menu, step)))
    if step is Step.CHECK_IN_KIND:
        return Transition(replace(state, step=step, menu=(), editing=None), (
            _say(config, language, texts.CHECKIN_NEED_HELP),))
    if step is Step.CHECK_IN_DETAILS:
        return Transition(replace(state, step=step, menu=(), editing=None), (
            _say(config, language, texts.CHECKIN_DETAILS),))
    if step in QUESTIONS:
        return Transition(replace(state, step=step, menu=(), editing=editing),
                          (_say(config, language, QUESTIONS[step]),))
    return Transition(replace(state, step=step, menu=(), editing=None, resume=None))


def _then(first: Reply, transition: Transition) -> Transition:
    return replace(transition, replies=(first, *transition.replies))


def _after_answer(config: BotConfig, state: State, message: Message | None = None) -> Transition:
    """Where to go once a field is answered: back to idle when editing, else the next optional question."""
    if state.editing:
        saved = _say(config, state.language, texts.SAVED)
        return Transition(replace(state, step=Step.IDLE, editing=None, menu=()), (saved,))
    index = OPTIONAL.index(state.step) if state.step in OPTIONAL else len(OPTIONAL) - 1
    if index + 1 < len(OPTIONAL):
        return ask(config, state, OPTIONAL[index + 1])
    done = Transition(replace(state, step=Step.IDLE, menu=()), (_say(config, state.language, texts.PROFILE_DONE),))
    if message is not None and message.channel == "telegram" and not _has_phone(state):
        offer = Reply(gettext_for(state.language, texts.LINK_OFFER),
                      contact_button=gettext_for(state.language, texts.CONTACT_BUTTON))
        return replace(done, replies=(*done.replies, offer))
    return done


def _language_for(config: BotConfig, state: State, message: Message) -> str:
    """The person's language, or for a newcomer the one their channel or phone suggests."""
    return state.profile.language or suggest_language(message.address, message.language_hint,
                                                      config.default_language)


def _has_phone(state: State) -> bool:
    return any(channel != "telegram" for channel, _ in state.addresses)


def _start_registration(config: BotConfig, state: State, message: Message) -> Transition:
    suggested = state.profile.language or suggest_language(message.address, message.language_hint,
                                                           config.default_language)
    menu = _language_menu(state, suggested)
    fresh = replace(state, step=Step.LANGUAGE, menu=menu, editing=None, resume=None,
                    profile=replace(state.profile, language=suggested))
    return Transition(fresh, (_say(config, suggested, texts.LANGUAGE_SUGGESTED), _language_list(menu)))


# --------------------------------------------------------------------------- commands

def _settled(state: State) -> State:
    """A command ends a registered person's pending question or edit: they are back at idle."""
    if state.registered and state.step is not Step.IDLE:
        return replace(state, step=Step.IDLE, menu=(), editing=None, resume=None)
    return state


def on_join(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    if state.registered:
        return Transition(replace(state, step=Step.IDLE), (_say(config, state.language, texts.REGISTERED),))
    return _start_registration(config, state, message)


def on_start(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    hinted = config.gazetteer.find(message.payload) if message.payload else None
    if hinted is not None:
        state = replace(state, area_hint=hinted.id)
    if state.opted_out and state.registered:
        return Transition(replace(_settled(state), opted_out=False), (_say(config, state.language, texts.RESUMED),))
    return on_join(config, replace(state, opted_out=False), message, intent)


def on_stop(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    language = _language_for(config, state, message)
    return Transition(replace(_settled(state), opted_out=True), (_say(config, language, texts.STOPPED),))


def on_help(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    language = _language_for(config, state, message)
    help_reply = _say(config, language, texts.HELP)
    if state.step is Step.NEW:
        return _then(help_reply, _start_registration(config, state, message))
    if state.step in (Step.IDLE,):
        return Transition(state, (help_reply,))
    return _then(help_reply, ask(config, state, state.step, editing=state.editing, resume=state.resume))


def on_update(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    if not state.registered:
        return on_join(config, state, message, intent)
    return ask(config, state, Step.UPDATE_MENU)


def on_lang(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    resume = state.resume if state.step is Step.LANGUAGE else state.step
    return ask(config, state, Step.LANGUAGE, editing=state.editing, resume=resume)


def on_delete(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    resume = state.resume if state.step is Step.CONFIRM_DELETE else state.step
    return ask(config, state, Step.CONFIRM_DELETE, resume=resume)


def on_mydata(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    language = _language_for(config, state, message)
    lines = [gettext_for(language, texts.MYDATA_HEADER)]
    lines += [f"{channel}: {address}" for channel, address in state.addresses]
    if state.consented or state.profile.language:
        lines += [f"{label}: {value}" for label, value in describe(config, state, language)]
    if not state.addresses and len(lines) == 1:
        return Transition(state, (_say(config, language, texts.NOT_REGISTERED),))
    return Transition(_settled(state), tuple(Reply(chunk) for chunk in pack(lines)))


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
    return [(gettext_for(language, label), value) for label, value in fields]


def _check_in_value(language: str, state: State) -> str | None:
    if state.last_check_in is None:
        return None
    answer, at = state.last_check_in
    word = texts.VALUE_SAFE if answer == "safe" else texts.VALUE_NEED_HELP
    return f"{gettext_for(language, word)} ({at.strftime('%Y-%m-%d %H:%M')} UTC)"


def pack(lines: list[str]) -> list[str]:
    """Join lines into as few messages as possible, each within three SMS segments."""
    chunks: list[str] = []
    for line in lines:
        if chunks and fit_segments(chunks[-1] + "\n" + line):
            chunks[-1] += "\n" + line
        else:
            chunks.append(line)
    return chunks


def _answered(state: State) -> State:
    """A check-in answer settles a pending question and closes the open check-in it answers."""
    return replace(_settled(state), check_in=None, check_in_latest=False)


def on_safe(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    if not state.registered:
        return Transition(state, (_say(config, _language_for(config, state, message), texts.NOT_REGISTERED),))
    return Transition(_answered(state), (_say(config, state.language, texts.CHECKIN_SAFE),),
                      (RecordCheckIn(state.check_in, "safe"), Confirm()))


def on_need(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    if not state.registered:
        return Transition(state, (_say(config, _language_for(config, state, message), texts.NOT_REGISTERED),))
    # The case opens now; the follow-up questions only add detail to it.
    asked = ask(config, _answered(state), Step.CHECK_IN_KIND)
    return replace(asked, effects=(RecordCheckIn(state.check_in, "need_help"), OpenCase(state.check_in)))


def on_code(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    if not state.registered:
        return Transition(state, (_say(config, _language_for(config, state, message), texts.NOT_REGISTERED),))
    settled = _settled(state)
    rest = intent.rest.replace(" ", "")  # normalised: CODE ARRÊT arrives as "arret"
    if rest in ("off", "0") or keyword_table(state.language).get(rest) == "STOP":
        return Transition(settled, (_say(config, state.language, texts.SHARE_CODE_REVOKED),), (RevokeShareCodes(),))
    return Transition(settled, (_say(config, state.language, texts.SHARE_CODE, code=message.nonce),),
                      (IssueShareCode(message.nonce),))


def on_status(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    code = intent.rest.replace(" ", "").upper()
    if not code:
        return Transition(_settled(state), (_say(config, _language_for(config, state, message),
                                                 texts.STATUS_UNKNOWN_CODE),))
    return Transition(_settled(state), (), (LookUpStatus(code),))


def status_reply(language: str, outcome: str, text: str | None = None) -> Reply:
    """The answer to STATUS CODE, once the service has looked the code up (``text`` when found)."""
    if outcome == "found" and text:
        return Reply(text)
    return Reply(gettext_for(language, texts.STATUS_TOO_MANY if outcome == "too_many" else texts.STATUS_UNKNOWN_CODE))


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
}


# --------------------------------------------------------------------------- step answers

def at_new(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    return _start_registration(config, state, message)


def at_language(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    chosen = _chosen_language(state, intent)
    if chosen is None:
        return Transition(state, (_say(config, state.language, texts.LANGUAGE_UNKNOWN), _language_list(state.menu)))
    state = replace(state, profile=replace(state.profile, language=chosen), menu=())
    if state.registered:
        # Back to the question LANG interrupted (keeping an UPDATE edit), else to idle.
        confirmed = Reply(gettext_for(chosen, texts.LANGUAGE_SET))
        resume = state.resume
        if resume is not None and resume in (Step.AREA, *OPTIONAL, *FOLLOW_UPS):
            return _then(confirmed, ask(config, replace(state, resume=None), resume, editing=state.editing))
        return Transition(replace(state, step=Step.IDLE, resume=None, editing=None), (confirmed,))
    if state.consented:
        return _then(Reply(gettext_for(chosen, texts.LANGUAGE_SET)), ask(config, state, Step.AREA))
    return ask(config, state, Step.CONSENT)


def _chosen_language(state: State, intent: Intent) -> str | None:
    if intent.number is not None:
        return state.menu[intent.number - 1] if 1 <= intent.number <= len(state.menu) else None
    typed = normalise(intent.text).replace(" ", "")
    for code, name in LANGUAGES.items():
        if typed in (code, normalise(name).replace(" ", "")):
            return code
    return None


def at_consent(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    language = state.language
    if intent.command == "YES" or intent.number == 1:
        consented = replace(state, consented=True, consent_at=message.at, opted_out=False)
        return replace(ask(config, consented, Step.AREA),
                       effects=(GiveConsent(config.notice_version, language),))
    if intent.command == "NO" or intent.number == 2:
        forgotten = State(opted_out=True, profile=Profile(language=language))
        return Transition(forgotten, (_say(config, language, texts.NO_CONSENT),), (Decline(),))
    return Transition(state, (Reply(gettext_for(language, texts.CONSENT_UNCLEAR), _yes_no(language, state.step)),))


def at_area(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    area_id: str | None = None
    if intent.number is not None and 1 <= intent.number <= len(state.menu):
        area_id = state.menu[intent.number - 1]
    elif intent.number is None:
        found = config.gazetteer.find(intent.text)
        area_id = found.id if found else None
    if area_id is None:
        return Transition(state, (_say(config, state.language, texts.AREA_UNKNOWN),))
    was_registered = state.registered
    state = replace(state, profile=replace(state.profile, area_id=area_id), menu=())
    if state.editing or was_registered:
        return _after_answer(config, replace(state, editing="area"))
    return _then(_say(config, state.language, texts.REGISTERED), ask(config, state, Step.FIRST_NAME))


def _optional(parse: Callable[[BotConfig, State, Message, Intent], object], invalid: str, field: str) -> Handler:
    """A handler for one optional question: skip, a valid value, or a short explanation."""

    def handler(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
        if intent.skip:
            return _after_answer(config, state, message)
        value = parse(config, state, message, intent)
        if value is None:
            return Transition(state, (_say(config, state.language, invalid),))
        answered = replace(state, profile=replace(state.profile, **{field: value}))  # type: ignore[arg-type]
        if field == "family_contact":
            return ask(config, answered, Step.SHARE_FAMILY, editing=state.editing)
        return _after_answer(config, answered, message)

    return handler


def _parse_name(config: BotConfig, state: State, message: Message, intent: Intent) -> str | None:
    name = " ".join(intent.text.split())
    if (not name or len(name) > 40 or not any(ch.isalpha() for ch in name) or any(ch.isdigit() for ch in name)
            or "@" in name):
        return None
    return name


def _parse_country(config: BotConfig, state: State, message: Message, intent: Intent) -> str | None:
    return find_country(intent.text) if intent.number is None else None


def _choice(options: tuple[str, ...]) -> Callable[[BotConfig, State, Message, Intent], str | None]:
    def parse(config: BotConfig, state: State, message: Message, intent: Intent) -> str | None:
        if intent.number is not None and 1 <= intent.number <= len(options):
            return options[intent.number - 1]
        return None

    return parse


def _parse_household(config: BotConfig, state: State, message: Message, intent: Intent) -> int | None:
    if intent.number is not None and 1 <= intent.number <= MAX_HOUSEHOLD:
        return intent.number
    return None


def _parse_contact(config: BotConfig, state: State, message: Message, intent: Intent) -> str | None:
    digits = "".join(ch for ch in normalise(intent.text) if ch.isdigit() or ch == "+")
    number = normalise_phone(digits, phone_region(message.address))
    if number is None or number == message.address:
        return None
    return number


def at_idle(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    if intent.command == "YES" and state.registered:
        return Transition(state, (_say(config, state.language, texts.CONFIRMED),), (Confirm(),))
    if message.contact_phone and state.registered:
        return Transition(state, (_say(config, state.language, texts.LINKED),), (LinkPhone(message.contact_phone),))
    return Transition(state, (_say(config, state.language, texts.NOT_UNDERSTOOD),))


def at_share_family(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    if intent.command == "YES" or intent.number == 1:
        return ask(config, replace(state, profile=replace(state.profile, share_family=True)), Step.FAMILY_LANGUAGE,
                   editing=state.editing)
    if intent.command == "NO" or intent.number == 2:
        return _after_answer(config, replace(state, profile=replace(state.profile, share_family=False)), message)
    language = state.language
    return Transition(state, (Reply(gettext_for(language, texts.CONSENT_UNCLEAR), _yes_no(language, state.step)),))


def at_family_language(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    chosen = _chosen_language(state, intent)
    if chosen is None:
        return Transition(state, (_say(config, state.language, texts.LANGUAGE_UNKNOWN),
                                  _language_list(state.menu, state.step)))
    return _after_answer(config, replace(state, profile=replace(state.profile, family_language=chosen)), message)


def at_check_in_kind(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    recorded = _say(config, state.language, texts.CASE_RECORDED)
    if intent.skip or not normalise(intent.text):  # nothing said (only marks or punctuation)
        return Transition(replace(state, step=Step.IDLE), (recorded,))
    if intent.number is not None:
        if 1 <= intent.number <= len(NEEDS):
            return replace(ask(config, state, Step.CHECK_IN_DETAILS),
                           effects=(DescribeNeed(category=NEEDS[intent.number - 1]),))
        return Transition(state, (_say(config, state.language, texts.INVALID_CHOICE),))
    # Words instead of a number: they describe the need in the person's own terms.
    return Transition(replace(state, step=Step.IDLE), (recorded,), (DescribeNeed(details=intent.text[:1000]),))


def at_check_in_details(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    recorded = _say(config, state.language, texts.CASE_RECORDED)
    if intent.skip or not normalise(intent.text):  # nothing said (only marks or punctuation)
        return Transition(replace(state, step=Step.IDLE), (recorded,))
    return Transition(replace(state, step=Step.IDLE), (recorded,), (DescribeNeed(details=intent.text[:1000]),))


def at_update_menu(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    if intent.number is not None and 1 <= intent.number <= len(UPDATE_FIELDS):
        step = UPDATE_FIELDS[intent.number - 1]
        if step is Step.LANGUAGE:
            return ask(config, state, Step.LANGUAGE, resume=Step.IDLE)
        return ask(config, state, step, editing=step.value)
    if intent.skip:
        return Transition(replace(state, step=Step.IDLE), (_say(config, state.language, texts.SAVED),))
    return Transition(state, (_say(config, state.language, texts.INVALID_CHOICE),))


def at_confirm_delete(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    language = state.language
    if intent.command == "YES" or intent.number == 1:
        return Transition(State(profile=Profile(language=language)), (_say(config, language, texts.DELETED),),
                          (Erase(),))
    if intent.command == "NO" or intent.number == 2:
        back = state.resume if state.resume not in (None, Step.CONFIRM_DELETE) else Step.NEW
        if back is Step.NEW and state.registered:
            back = Step.IDLE
        cancelled = _say(config, language, texts.DELETE_CANCELLED)
        if back in (Step.NEW, Step.IDLE):
            return Transition(replace(state, step=back, resume=None), (cancelled,))
        return _then(cancelled, ask(config, replace(state, resume=None), back, editing=state.editing))
    return Transition(state, (Reply(gettext_for(language, texts.CONSENT_UNCLEAR), _yes_no(language, state.step)),))


STEPS: dict[Step, Handler] = {
    Step.NEW: at_new,
    Step.LANGUAGE: at_language,
    Step.CONSENT: at_consent,
    Step.AREA: at_area,
    Step.FIRST_NAME: _optional(_parse_name, texts.INVALID_NAME, "first_name"),
    Step.NATIONALITY: _optional(_parse_country, texts.INVALID_NATIONALITY, "nationality"),
    Step.GENDER: _optional(_choice(GENDERS), texts.INVALID_CHOICE, "gender"),
    Step.AGE_BAND: _optional(_choice(AGE_BANDS), texts.INVALID_CHOICE, "age_band"),
    Step.HOUSEHOLD: _optional(_parse_household, texts.INVALID_NUMBER, "household_size"),
    Step.CONTACT: _optional(_parse_contact, texts.INVALID_PHONE, "family_contact"),
    Step.IDLE: at_idle,
    Step.UPDATE_MENU: at_update_menu,
    Step.CONFIRM_DELETE: at_confirm_delete,
    Step.SHARE_FAMILY: at_share_family,
    Step.FAMILY_LANGUAGE: at_family_language,
    Step.CHECK_IN_KIND: at_check_in_kind,
    Step.CHECK_IN_DETAILS: at_check_in_details,
}


# --------------------------------------------------------------------------- entry point

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
    # A check-in answer first: a 1 or 2 just after a check-in answers it even at the language menu.
    if intent.number in (1, 2) and state.registered and _check_in_answer(state):
        return (on_safe if intent.number == 1 else on_need)(config, state, message, intent)
    if state.step is Step.LANGUAGE and _chosen_language(state, intent):
        return at_language(config, state, message, intent)
    handler = COMMANDS.get(intent.command or "")
    if handler is not None:
        return handler(config, state, message, intent)
    return STEPS[state.step](config, state, message, intent)


def _check_in_answer(state: State) -> bool:
    """Whether a bare 1 or 2 answers a check-in rather than the pending question."""
    if state.step is Step.IDLE:
        return True
    return state.check_in is not None and (state.check_in_latest or state.step in CHECK_IN_STEPS)


def _button(config: BotConfig, state: State, message: Message, question: str, number: int) -> Transition:
    """A button press: an answer to the question it belongs to, or a stale press that re-asks."""
    intent = Intent(number=number, text=str(number))
    if question == CHECK_IN_BUTTON and number in (1, 2):
        return (on_safe if number == 1 else on_need)(config, state, message, intent)
    if question == state.step.value and state.step not in (Step.NEW, Step.IDLE):
        # The button names its question: the press answers it, even while a check-in is open.
        return STEPS[state.step](config, state, message, intent)
    if state.step in (Step.NEW, Step.IDLE):
        return Transition(state, (_say(config, _language_for(config, state, message), texts.NOT_UNDERSTOOD),))
    return ask(config, state, state.step, editing=state.editing, resume=state.resume)
