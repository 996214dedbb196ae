"""Structured logs (structlog), as JSON or for a console. Log ids, never numbers or message text."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import ExcInfo

from beacon.config import ConfigError
from campaigns.cases import CaseError
from domain.areas import GazetteerError
from registry.aggregates import QueryError
from registry.crypto import KeyringError
from registry.disclosure import DisclosureError
from registry.tokens import TokenError
from registry.users import UserError

# Locals off: a frame's locals hold what a person wrote and their number.
_FRAMES = ExceptionDictTransformer(show_locals=False)
# Exceptions whose messages Beacon writes itself, from ids, names of settings and states only.
# Anyone else's can quote a value: Python's quote what they could not parse (``int()`` of a
# person's reply), a database error lists its statement's parameters, a provider's the number.
OWN_MESSAGES: tuple[type[BaseException], ...] = (
    KeyringError, ConfigError, GazetteerError, UserError, TokenError, CaseError, QueryError, DisclosureError)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes and contexts, in the order structlog lists their stacks."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in found):
        found.append(current)
        cause, context = current.__cause__, current.__context__
        if cause is not None and cause.__traceback__ is not None:
            current = cause
        elif context is not None and context.__traceback__ is not None and not current.__suppress_context__:
            current = context
        else:
            current = None
    return found


def _withhold_messages(stacks: list[dict[str, Any]], exc: BaseException | None) -> list[dict[str, Any]]:
    """Keep each exception's type and frames; its message and notes only if Beacon wrote them."""
    chain = _chain(exc) if exc is not None else []
    for n, stack in enumerate(stacks):
        raised = chain[n] if n < len(chain) else None
        if not isinstance(raised, OWN_MESSAGES):
            stack["exc_value"] = ""
            stack["exc_notes"] = []
        members = raised.exceptions if isinstance(raised, BaseExceptionGroup) else ()
        for m, group in enumerate(stack.get("exceptions", [])):
            _withhold_messages(group, members[m] if m < len(members) else None)
    return stacks


def exception_stacks(exc_info: ExcInfo) -> list[dict[str, Any]]:
    """structlog's dict tracebacks (type, frames, causes) without locals or others' messages."""
    return _withhold_messages(_FRAMES(exc_info), exc_info[1])


def configure(fmt: str = "console", level: str = "info") -> None:
    """Route structlog and the standard library's logging to stderr in one format."""
    rendering: list[structlog.typing.Processor] = [
        structlog.processors.ExceptionRenderer(exception_stacks), structlog.processors.JSONRenderer()
    ] if fmt == "json" else [structlog.dev.ConsoleRenderer(colors=False)]
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
        structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # aiohttp's access log carries query strings and client addresses; ours logs request ids instead.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for noisy in ("httpx", "telegram", "twilio", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
