"""The optional profile questions after registration, and UPDATE, which asks one of them again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from bot import texts
from bot.countries import find_country, normalise_phone, phone_region
from bot.flow import UPDATE_FIELDS, Handler, after_answer, ask
from bot.keywords import Intent
from bot.registration import on_join
from bot.replies import say
from bot.state import BotConfig, Message, State, Step, Transition
from domain.text import normalise

GENDERS = ("female", "male", "other")
AGE_BANDS = ("0-17", "18-29", "30-44", "45-59", "60+")
MAX_HOUSEHOLD = 50

Parse = Callable[[BotConfig, State, Message, Intent], object]


def _optional(parse: Parse, invalid: str, field: str) -> Handler:
    """A handler for one optional question: skip, a valid value, or a short explanation."""

    def handler(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
        if intent.skip:
            return after_answer(config, state, message)
        value = parse(config, state, message, intent)
        if value is None:
            return Transition(state, (say(config, state.language, invalid),))
        answered = replace(state, profile=replace(state.profile, **{field: value}))  # type: ignore[arg-type]
        if field == "family_contact" and config.family_sharing:
            return ask(config, answered, Step.SHARE_FAMILY, editing=state.editing)
        return after_answer(config, answered, message)

    return handler


def _parse_name(config: BotConfig, state: State, message: Message, intent: Intent) -> str | None:
    name = " ".join(intent.text.split())
    if (not name or len(name) > 40 or not any(ch.isalpha() for ch in name) or any(ch.isdigit() for ch in name)
            or "@" in name):
        return None
    return name


def _parse_country(config: BotConfig, state: State, message: Message, intent: Intent) -> str | None:
    return find_country(intent.text) if intent.number is None else None


def _choice(options: tuple[str, ...]) -> Parse:
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
    digits = "".join(ch for ch in normalise(intent.text) if ch.isdecimal() or ch == "+")
    number = normalise_phone(digits, phone_region(message.address))
    if number is None or number == message.address:
        return None
    return number


at_first_name = _optional(_parse_name, texts.INVALID_NAME, "first_name")
at_nationality = _optional(_parse_country, texts.INVALID_NATIONALITY, "nationality")
at_gender = _optional(_choice(GENDERS), texts.INVALID_CHOICE, "gender")
at_age_band = _optional(_choice(AGE_BANDS), texts.INVALID_CHOICE, "age_band")
at_household = _optional(_parse_household, texts.INVALID_NUMBER, "household_size")
at_contact = _optional(_parse_contact, texts.INVALID_PHONE, "family_contact")


def on_update(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """UPDATE: the menu of fields to change (registration first for a newcomer)."""
    if not state.registered:
        return on_join(config, state, message, intent)
    return ask(config, state, Step.UPDATE_MENU)


def at_update_menu(config: BotConfig, state: State, message: Message, intent: Intent) -> Transition:
    """The field picked from the UPDATE menu: ask for it again."""
    if intent.number is not None and 1 <= intent.number <= len(UPDATE_FIELDS):
        step = UPDATE_FIELDS[intent.number - 1]
        if step is Step.LANGUAGE:
            return ask(config, state, Step.LANGUAGE, resume=Step.IDLE)
        return ask(config, state, step, editing=step.value)
    if intent.skip:
        return Transition(replace(state, step=Step.IDLE), (say(config, state.language, texts.SAVED),))
    return Transition(state, (say(config, state.language, texts.INVALID_CHOICE),))
