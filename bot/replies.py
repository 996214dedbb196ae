"""Building replies: catalog texts in the person's language, numbered menus and their buttons."""

from __future__ import annotations

from bot import texts
from bot.countries import suggest_language
from bot.i18n import LANGUAGES, gettext_for, render
from bot.state import BotConfig, Message, Reply, State, Step
from domain.segments import segments

# Check-in buttons send "check_in:<number>", whatever question is pending.
CHECK_IN_BUTTON = "check_in"
# No reply may take more than three SMS segments.
MAX_SEGMENTS = 3


def fit_segments(text: str) -> bool:
    """Whether ``text`` fits the reply size limit."""
    return segments(text).segments <= MAX_SEGMENTS


def say(config: BotConfig, language: str, message: str, **params: object) -> Reply:
    """One catalog message in ``language``, its placeholders filled in."""
    return Reply(render(language, message, operator=config.operator, **params) if "{" in message else
                 gettext_for(language, message))


def word(language: str, command: str) -> str:
    """The first keyword of ``command`` in ``language``, as shown on a button."""
    return gettext_for(language, texts.KEYWORDS[command]).split("|")[0]


def yes_no(language: str, step: Step) -> tuple[tuple[str, str], ...]:
    """YES and NO buttons answering the question of ``step``."""
    return ((f"1 {word(language, 'YES')}", f"{step.value}:1"), (f"2 {word(language, 'NO')}", f"{step.value}:2"))


def check_in_buttons(language: str) -> tuple[tuple[str, str], ...]:
    """The two check-in answers as buttons, in ``language``."""
    return ((f"1 {gettext_for(language, texts.BUTTON_SAFE)}", f"{CHECK_IN_BUTTON}:1"),
            (f"2 {gettext_for(language, texts.BUTTON_NEED_HELP)}", f"{CHECK_IN_BUTTON}:2"))


def language_menu(suggested: str) -> tuple[str, ...]:
    """Every language code in menu order, ``suggested`` first."""
    return (suggested, *(code for code in LANGUAGES if code != suggested))


def language_list(menu: tuple[str, ...], step: Step = Step.LANGUAGE) -> Reply:
    """The numbered languages of ``menu``, with a button each."""
    return Reply(
        "\n".join(f"{n} {LANGUAGES[code]}" for n, code in enumerate(menu, 1)),
        buttons=tuple((LANGUAGES[code], f"{step.value}:{n}") for n, code in enumerate(menu, 1)),
    )


def area_prompt(config: BotConfig, language: str, hint: str | None) -> tuple[Reply, tuple[str, ...]]:
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


def pack(lines: list[str]) -> list[str]:
    """Join lines into as few messages as possible, each within three SMS segments."""
    chunks: list[str] = []
    for line in lines:
        if chunks and fit_segments(chunks[-1] + "\n" + line):
            chunks[-1] += "\n" + line
        else:
            chunks.append(line)
    return chunks


def language_for(config: BotConfig, state: State, message: Message) -> str:
    """The person's language, or for a newcomer the one their channel or phone suggests."""
    return state.profile.language or suggest_language(message.address, message.language_hint,
                                                      config.default_language)
