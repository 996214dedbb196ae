"""The poll on the compose form: a question and up to nine option rows, each with a text per language.

Empty rows are left out; the rest becomes the API's ``poll`` body (:class:`beacon.api_broadcasts.PollIn`),
checked here for what the form can get wrong: a question or an option without a text in a language the
message has, a text in a language the message has not, options that read the same.
"""

from __future__ import annotations

from typing import Any

from bot.i18n import LANGUAGES
from bot.polls import open_poll, poll_text
from bot.texts import N_
from domain.text import normalise

OPTION_ROWS = 9
MIN_OPTIONS = 2

Error = tuple[str, str, dict[str, Any]]  # field, message (translated later), its parameters


def _row(form: Any, prefix: str) -> dict[str, str]:
    found = {code: str(form.get(f"{prefix}_{code}") or "").strip() for code in LANGUAGES}
    return {code: text for code, text in found.items() if text}


def poll_from_form(form: Any) -> dict[str, Any] | None:
    """The poll typed on the form (empty option rows left out), or None when none was."""
    question = _row(form, "poll_question")
    options = [row for n in range(1, OPTION_ROWS + 1) if (row := _row(form, f"poll_option_{n}"))]
    if not question and not options:
        return None
    return {"question": question, "options": options}


def valid_shape(poll: Any) -> bool:
    """Whether a poll carried back by the preview page has the shape the form gave it."""
    if poll is None:
        return True
    if not isinstance(poll, dict) or set(poll) != {"question", "options"}:
        return False
    question, options = poll["question"], poll["options"]
    texts = [question, *options] if isinstance(options, list) else []
    return (isinstance(question, dict) and isinstance(options, list) and len(options) <= OPTION_ROWS
            and all(isinstance(t, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in t.items())
                    for t in texts))


def poll_errors(texts: dict[str, str], poll: dict[str, Any] | None) -> list[Error]:
    """What is wrong with the poll for a message with these texts (nothing when there is no poll)."""
    if poll is None:
        return []
    question, options = poll["question"], poll["options"]
    errors: list[Error] = []
    if not question:
        errors.append(("poll.question", N_("Write the poll's question, or leave its options empty."), {}))
    if len(options) < MIN_OPTIONS:
        errors.append(("poll.options", N_("A poll needs at least two options."), {}))
    languages = [code for code in LANGUAGES if code in texts] or [code for code in LANGUAGES if code in question]
    for code in LANGUAGES:
        if code not in languages and (code in question or any(code in option for option in options)):
            errors.append(("poll", N_("The poll has a {language} text but the message has none: write the message "
                                      "in {language} too, or remove the poll's {language} texts."),
                           {"language": LANGUAGES[code]}))
    for code in languages:
        if question and code not in question:
            errors.append(("poll.question", N_("Write the question in {language} too."),
                           {"language": LANGUAGES[code]}))
        seen: dict[str, int] = {}
        for number, option in enumerate(options, 1):
            if code not in option:
                errors.append(("poll.options", N_("Option {number} has no {language} text."),
                               {"number": number, "language": LANGUAGES[code]}))
                continue
            said = normalise(option[code])
            if said in seen:
                errors.append(("poll.options", N_("Options {first} and {second} read the same in {language}."),
                               {"first": seen[said], "second": number, "language": LANGUAGES[code]}))
            seen.setdefault(said, number)
    return errors


def asked_after_check_in(poll: dict[str, Any] | None, check_in: bool, language: str, default: str,
                         shown: str) -> str | None:
    """The poll as it follows someone's check-in answer, when the broadcast asks both (else None)."""
    if not poll or not check_in:
        return None
    return poll_text(open_poll(0, poll, language, default), shown)
