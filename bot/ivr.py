"""Phone calls as one transition table: the keypad drives the same registration, check-ins and cases as texts.

Everything that decides what a call does lives here. A call moves through :class:`Node` s; each
webhook from Twilio brings the keys pressed (or none: the caller let the ``<Gather>`` time out) and
where the call stands (:class:`Call`, carried in the ``<Gather>`` action URL, which Twilio signs, so
Beacon keeps no call state of its own). :func:`answer` is pure like ``machine.step``: it returns the
prompts to speak, what the next keypress answers, the new conversation state and the effects for
the registry. Prompts are short sentences for the ear from the same catalogs as the texts.

A broadcast's poll is read out with its options and answered by one key (after the check-in, when the
broadcast asks both), recorded by the same effect as a texted answer. A known caller may erase their data
from the menu: what is erased is said, and only 1 erases (as DELETE and 1 YES by text); any other key or
silence keeps it.

Never a dead end: a wrong key says so and asks again, silence repeats the question, and after
``MAX_REPEATS`` repeats (``POLL_REPEATS`` for a poll) the call says goodbye and ends.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from bot import texts
from bot.i18n import LANGUAGES, gettext_for, render
from bot.state import (
    BotConfig,
    Confirm,
    Decline,
    DescribeNeed,
    Effect,
    Erase,
    GiveConsent,
    OpenCase,
    PreferCalls,
    Profile,
    RecordCheckIn,
    RecordPollAnswer,
    State,
    Step,
)
from domain.vocabulary import Answer, Need

MAX_REPEATS = 2  # a question is asked again this many times (silence or a wrong key), then the call ends
POLL_REPEATS = 1  # a poll is read once more after a silence or a wrong key
PAGE = 8  # options read out per page; 9 reads the next page
MORE = "9"
NEEDS = tuple(Need)
NEED_LABELS = {
    Need.MEDICAL: texts.NEED_MEDICAL, Need.SHELTER: texts.NEED_SHELTER, Need.FOOD: texts.NEED_FOOD,
    Need.WATER: texts.NEED_WATER, Need.DOCUMENTS: texts.NEED_DOCUMENTS, Need.EVACUATION: texts.NEED_EVACUATION,
    Need.OTHER: texts.NEED_OTHER,
}


class Node(StrEnum):
    """The question a call is at: what the next keypress answers."""

    START = "start"  # an inbound call begins: nothing pressed yet
    LANGUAGE = "language"
    CONSENT = "consent"
    AREA = "area"
    MENU = "menu"
    KIND = "kind"
    ALERT = "alert"  # an outbound broadcast call was answered: nothing pressed yet
    CHECK_IN = "check_in"
    POLL = "poll"  # the broadcast's poll was read out: a key chooses an option
    ERASE = "erase"  # what erasing removes was said: 1 erases, anything else keeps


@dataclass(frozen=True, slots=True)
class Call:
    """Where a call stands; plain numbers and names only (it travels in a URL)."""

    node: Node
    page: int = 0
    repeats: int = 0
    broadcast_id: int | None = None


@dataclass(frozen=True, slots=True)
class VoicePoll:
    """The poll a call reads out: its broadcast, the language its texts are in, the question and the options."""

    broadcast_id: int
    language: str
    question: str
    options: tuple[str, ...]
    default: tuple[str, ...] = ()  # the question and options in the default language


@dataclass(frozen=True, slots=True)
class Prompt:
    """One sentence to speak: its language, its text, and the name of its recording (see README); the catalog
    message and its parameters say it again in another language (a broadcast's text has none)."""

    language: str
    text: str
    key: str
    message: str = ""
    params: tuple[tuple[str, str], ...] = ()
    twin: str = ""  # the sentence in the default language, when the catalog cannot say it (a poll's)

    def again_in(self, language: str) -> str:
        """The same sentence in ``language`` (a broadcast's text as it is)."""
        if self.twin:
            return self.twin
        if not self.message:
            return self.text
        params = dict(self.params)
        return render(language, self.message, **params) if params else gettext_for(language, self.message)


@dataclass(frozen=True, slots=True)
class Turn:
    """What one webhook of a call does."""

    state: State
    prompts: tuple[Prompt, ...]
    next: Call | None  # what the next keypress answers; None: the call ends after the prompts
    effects: tuple[Effect, ...] = ()


def _say(language: str, message: str, key: str, **params: object) -> Prompt:
    text = render(language, message, **params) if params else gettext_for(language, message)
    return Prompt(language, text, key, message, tuple((k, str(v)) for k, v in params.items()))


def _options(language: str | None, values: list[tuple[str, str]], more: bool, default: str) -> list[Prompt]:
    """``For <label>, press <n>.`` for each (value, label) on the page; each language's own when ``language`` is
    None (the language menu, whose "more" is in the default language), then the "more" choice."""
    prompts = []
    for n, (value, label) in enumerate(values, 1):
        spoken = language or value
        prompts.append(_say(spoken, texts.VOICE_OPTION, f"option.{value}", option=label, number=n))
    if more:
        prompts.append(_say(language or default, texts.VOICE_MORE, "more"))
    return prompts


def _page(items: tuple[str, ...], page: int) -> tuple[tuple[str, ...], bool]:
    start = page * PAGE
    return items[start:start + PAGE], start + PAGE < len(items)


def _poll_prompts(config: BotConfig, poll: VoicePoll) -> list[Prompt]:
    """The question, then ``For <option>, press <n>.`` for each option, all in the poll's language (the
    default-language texts are the twins spoken where that language has no voice)."""
    default = config.default_language
    twins = poll.default if len(poll.default) == len(poll.options) + 1 else (poll.question, *poll.options)
    prompts = [Prompt(poll.language, poll.question, "poll", twin=twins[0])]
    for n, (option, twin) in enumerate(zip(poll.options, twins[1:], strict=True), 1):
        said = _say(poll.language, texts.VOICE_OPTION, f"poll.{n}", option=option, number=n)
        prompts.append(replace(said, twin=render(default, texts.VOICE_OPTION, option=twin, number=n)))
    return prompts


def ask(config: BotConfig, state: State, call: Call, alert: tuple[str, str] | None = None,
        poll: VoicePoll | None = None) -> list[Prompt]:
    """The prompts that put the question of ``call.node`` (the page it is at)."""
    language = state.language
    node = call.node
    if node is Node.LANGUAGE:
        shown, more = _page(tuple(LANGUAGES), call.page)
        return _options(None, [(code, LANGUAGES[code]) for code in shown], more, config.default_language)
    if node is Node.CONSENT:
        return [_say(language, texts.VOICE_NOTICE, "notice", operator=config.operator,
                     months=config.retention_months)]
    if node is Node.AREA:
        areas = config.gazetteer.areas
        shown, more = _page(tuple(areas), call.page)
        return [_say(language, texts.VOICE_AREA, "area"),
                *_options(language, [(a, areas[a].name(language)) for a in shown], more, config.default_language)]
    if node is Node.MENU:
        return [_say(language, texts.VOICE_MENU, "menu")]
    if node is Node.KIND:
        return [_say(language, texts.VOICE_KIND, "kind"),
                *_options(language, [(n.value, gettext_for(language, NEED_LABELS[n])) for n in NEEDS], False,
                          config.default_language)]
    if node is Node.CHECK_IN:
        spoken = [Prompt(alert[0], alert[1], "alert")] if alert else []
        return [*spoken, _say(language, texts.VOICE_CHECK_IN, "check_in")]
    if node is Node.POLL and poll is not None:
        return _poll_prompts(config, poll)
    if node is Node.ERASE:
        return [_say(language, texts.VOICE_ERASE_WHAT, "erase_what")]
    raise ValueError(f"{node} asks no question")


def start(config: BotConfig, state: State, *, alert: tuple[str, str] | None = None,
          broadcast_id: int | None = None, poll: VoicePoll | None = None, check_in: bool = True) -> Turn:
    """A call is answered: the broadcast it carries (outbound: its check-in question, else its poll), else the
    menu or registration (inbound)."""
    if broadcast_id is not None:
        if check_in:
            call = Call(Node.CHECK_IN, broadcast_id=broadcast_id)
            return Turn(state, tuple(ask(config, state, call, alert)), call)
        spoken = (Prompt(alert[0], alert[1], "alert"),) if alert else ()
        if poll is None:
            return Turn(state, (*spoken, _say(state.language, texts.VOICE_GOODBYE, "goodbye")), None)
        call = Call(Node.POLL, broadcast_id=broadcast_id)
        return Turn(state, (*spoken, *ask(config, state, call, poll=poll)), call)
    if state.registered:
        call = Call(Node.MENU)
    elif state.consented and state.profile.language:
        call = Call(Node.AREA)
    else:
        call = Call(Node.LANGUAGE)
    return Turn(state, tuple(ask(config, state, call)), call)


def voicemail(state: State, alert: tuple[str, str]) -> Turn:
    """An answering machine took the call: the message once, no question, no check-in, no poll."""
    return Turn(state, (Prompt(alert[0], alert[1], "alert"), _say(state.language, texts.VOICE_GOODBYE, "goodbye")),
                None)


def answer(config: BotConfig, state: State, call: Call, digits: str | None, at: datetime,
           alert: tuple[str, str] | None = None, poll: VoicePoll | None = None, check_in: bool = True) -> Turn:
    """The keys pressed at ``call`` (None: nothing pressed before the timeout); ``alert`` is the broadcast
    text the call reads out, as (language, text): the latest for the person's area at the menu; ``poll`` the
    poll of that broadcast, when the person may answer it (it is the poll open for them, as for a text);
    ``check_in`` whether the broadcast a placed call carries asks for a check-in."""
    if call.node is Node.START:
        return start(config, state)
    if call.node is Node.ALERT:
        return start(config, state, alert=alert, broadcast_id=call.broadcast_id, poll=poll, check_in=check_in)
    if call.node is Node.POLL and poll is None:  # closed or withdrawn since it was read out
        return Turn(state, (_say(state.language, texts.VOICE_GOODBYE, "goodbye"),), None)
    if call.node is Node.ERASE and not state.registered:  # only a known caller reaches it (from the menu)
        return start(config, state)
    key = (digits or "").strip()[:1]
    if call.node is Node.ERASE and not key:  # silence keeps the data
        return _keep(config, state)
    if not key:
        return _again(config, state, call, alert, poll, wrong=False)
    handler = _TABLE[call.node]
    turn = handler(config, state, call, key, at, alert, poll)
    return turn if turn is not None else _again(config, state, call, alert, poll, wrong=True)


def _again(config: BotConfig, state: State, call: Call, alert: tuple[str, str] | None, poll: VoicePoll | None, *,
           wrong: bool) -> Turn:
    """Silence or a wrong key: the question again, until MAX_REPEATS (POLL_REPEATS); then goodbye (a need-help
    call has its case open already)."""
    language = state.language
    invalid = [_say(language, texts.VOICE_INVALID, "invalid")] if wrong else []
    if call.repeats >= (POLL_REPEATS if call.node is Node.POLL else MAX_REPEATS):
        closing = [_say(language, texts.CASE_RECORDED, "case_recorded")] if call.node is Node.KIND else []
        return Turn(state, (*invalid, *closing, _say(language, texts.VOICE_GOODBYE, "goodbye")), None)
    again = replace(call, repeats=call.repeats + 1)
    return Turn(state, (*invalid, *ask(config, state, again, alert, poll)), again)


def _choice(items: tuple[str, ...], call: Call, key: str) -> tuple[str | None, Call | None]:
    """The item a key picks on the page shown, or the next page (9, when there is one)."""
    shown, more = _page(items, call.page)
    if key == MORE and more:
        return None, replace(call, page=call.page + 1, repeats=0)
    if key.isdigit() and 1 <= int(key) <= len(shown):
        return shown[int(key) - 1], None
    return None, None


def _at_language(config: BotConfig, state: State, call: Call, key: str, at: datetime,
                 alert: tuple[str, str] | None, poll: VoicePoll | None) -> Turn | None:
    chosen, paged = _choice(tuple(LANGUAGES), call, key)
    if paged is not None:
        return Turn(state, tuple(ask(config, state, paged)), paged)
    if chosen is None:
        return None
    state = replace(state, step=Step.CONSENT if not state.consented else state.step,
                    profile=replace(state.profile, language=chosen))
    following = Call(Node.AREA if state.consented else Node.CONSENT)
    return Turn(state, tuple(ask(config, state, following)), following)


def _at_consent(config: BotConfig, state: State, call: Call, key: str, at: datetime,
                alert: tuple[str, str] | None, poll: VoicePoll | None) -> Turn | None:
    language = state.language
    if key == "1":
        state = replace(state, step=Step.AREA, consented=True, consent_at=at, opted_out=False)
        following = Call(Node.AREA)
        return Turn(state, tuple(ask(config, state, following)), following,
                    (GiveConsent(config.notice_version, language),))
    if key == "2":
        forgotten = State(opted_out=True, profile=Profile(language=language))
        return Turn(forgotten, (_say(language, texts.VOICE_NO_CONSENT, "no_consent"),
                                _say(language, texts.VOICE_GOODBYE, "goodbye")), None, (Decline(),))
    return None


def _at_area(config: BotConfig, state: State, call: Call, key: str, at: datetime,
             alert: tuple[str, str] | None, poll: VoicePoll | None) -> Turn | None:
    chosen, paged = _choice(tuple(config.gazetteer.areas), call, key)
    if paged is not None:
        return Turn(state, tuple(ask(config, state, paged)), paged)
    if chosen is None:
        return None
    state = replace(state, step=Step.IDLE, menu=(), profile=replace(state.profile, area_id=chosen))
    menu = Call(Node.MENU)
    return Turn(state, (_say(state.language, texts.VOICE_REGISTERED, "registered"), *ask(config, state, menu)), menu)


def _check_in(config: BotConfig, state: State, key: str, broadcast_id: int | None,
              poll: VoicePoll | None = None) -> Turn | None:
    """1 safe (recorded, then the broadcast's poll when it asks one, else goodbye) or 2 need help (a case opens
    at once, then the kind of help)."""
    language = state.language
    settled = replace(state, step=Step.IDLE, check_in=None, check_in_latest=False)
    if key == "1":
        effects = (RecordCheckIn(broadcast_id, Answer.SAFE), Confirm())
        safe = _say(language, texts.CHECKIN_SAFE, "safe")
        if poll is not None:
            asked = Call(Node.POLL, broadcast_id=poll.broadcast_id)
            return Turn(settled, (safe, *ask(config, settled, asked, poll=poll)), asked, effects)
        return Turn(settled, (safe, _say(language, texts.VOICE_GOODBYE, "goodbye")), None, effects)
    if key == "2":  # as by text: someone who asked for help is not asked the poll (they may still answer it)
        kind = Call(Node.KIND)
        return Turn(settled, tuple(ask(config, settled, kind)), kind,
                    (RecordCheckIn(broadcast_id, Answer.NEED_HELP), OpenCase(broadcast_id)))
    return None


def _keep(config: BotConfig, state: State) -> Turn:
    """Erasing declined (another key, or silence): nothing erased, back to the menu."""
    menu = Call(Node.MENU)
    return Turn(state, (_say(state.language, texts.DELETE_CANCELLED, "delete_cancelled"), *ask(config, state, menu)),
                menu)


def _at_menu(config: BotConfig, state: State, call: Call, key: str, at: datetime,
             alert: tuple[str, str] | None, poll: VoicePoll | None) -> Turn | None:
    if key in ("1", "2"):  # as by text, the poll of the broadcast whose check-in this answers follows "safe"
        follows = poll if poll is not None and poll.broadcast_id == state.check_in else None
        return _check_in(config, state, key, state.check_in, follows)
    language = state.language
    menu = Call(Node.MENU)
    if key == "3":
        if alert is None:
            return Turn(state, (_say(language, texts.VOICE_NO_ALERT, "no_alert"), *ask(config, state, menu)), menu)
        heard = Prompt(alert[0], alert[1], "alert")
        if poll is not None and state.check_in is None:  # as by text: no poll answer while a check-in is open
            asked = Call(Node.POLL, broadcast_id=poll.broadcast_id)
            return Turn(state, (heard, *ask(config, state, asked, poll=poll)), asked)
        return Turn(state, (heard, *ask(config, state, menu)), menu)
    if key == "4":
        erase = Call(Node.ERASE)
        return Turn(state, tuple(ask(config, state, erase)), erase)
    if key == "5":
        return Turn(state, (_say(language, texts.VOICE_CALLS_ON, "calls_on"), *ask(config, state, menu)), menu,
                    (PreferCalls(),))
    return None


def _at_check_in(config: BotConfig, state: State, call: Call, key: str, at: datetime,
                 alert: tuple[str, str] | None, poll: VoicePoll | None) -> Turn | None:
    return _check_in(config, state, key, call.broadcast_id, poll)


def _at_kind(config: BotConfig, state: State, call: Call, key: str, at: datetime,
             alert: tuple[str, str] | None, poll: VoicePoll | None) -> Turn | None:
    if not key.isdigit() or not 1 <= int(key) <= len(NEEDS):
        return None
    language = state.language
    return Turn(state, (_say(language, texts.CASE_RECORDED, "case_recorded"),
                        _say(language, texts.VOICE_GOODBYE, "goodbye")), None,
                (DescribeNeed(category=NEEDS[int(key) - 1]),))


def _at_poll(config: BotConfig, state: State, call: Call, key: str, at: datetime,
             alert: tuple[str, str] | None, poll: VoicePoll | None) -> Turn | None:
    """A key that is one of the options is the answer, recorded as a texted answer is (the latest wins)."""
    if poll is None or not key.isdigit() or not 1 <= int(key) <= len(poll.options):
        return None
    language = state.language
    return Turn(state, (_say(language, texts.VOICE_POLL_THANKS, "poll_thanks"),
                        _say(language, texts.VOICE_GOODBYE, "goodbye")), None,
                (RecordPollAnswer(poll.broadcast_id, int(key)),))


def _at_erase(config: BotConfig, state: State, call: Call, key: str, at: datetime,
              alert: tuple[str, str] | None, poll: VoicePoll | None) -> Turn | None:
    """1 erases everything, exactly as DELETE and 1 YES by text; any other key keeps it."""
    if key != "1":
        return _keep(config, state)
    language = state.language
    erased = State(profile=Profile(language=language))
    return Turn(erased, (_say(language, texts.DELETED, "deleted"), _say(language, texts.VOICE_GOODBYE, "goodbye")),
                None, (Erase(),))


_TABLE = {
    Node.LANGUAGE: _at_language,
    Node.CONSENT: _at_consent,
    Node.AREA: _at_area,
    Node.MENU: _at_menu,
    Node.CHECK_IN: _at_check_in,
    Node.KIND: _at_kind,
    Node.POLL: _at_poll,
    Node.ERASE: _at_erase,
}
