"""Structured logs (structlog), as JSON or for a console. Log ids, never numbers or message text."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import ExcInfo

# Locals off: a frame's locals hold what a person wrote and their number.
_FRAMES = ExceptionDictTransformer(show_locals=False)


def _withhold_messages(stacks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep each exception's type and frames, never its message or notes.

    A message can quote a value: Python's own errors quote what they could not parse (``int()`` of
    a person's reply), a database error lists its statement's parameters.
    """
    for stack in stacks:
        stack["exc_value"] = ""
        stack["exc_notes"] = []
        for group in stack.get("exceptions", []):
            _withhold_messages(group)
    return stacks


def exception_stacks(exc_info: ExcInfo) -> list[dict[str, Any]]:
    """structlog's dict tracebacks (type, frames, causes) without locals or messages."""
    return _withhold_messages(_FRAMES(exc_info))


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
