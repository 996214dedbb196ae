"""Rate limits on sends, made by a factory the providers take so tests can hand in their own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from aiolimiter import AsyncLimiter


class Limiter(Protocol):
    """Lets a send through when the rate allows it."""

    async def acquire(self) -> None:
        """Wait for room for one message."""


# (messages per second, key) -> a limiter for that rate. The key names a limit the provider applies to the
# whole account or sender (e.g. "twilio:+15005550006"), which a factory may share between processes; None
# for a limit that one process may keep to itself (Telegram's per-chat pace).
Limiters = Callable[[float, str | None], Limiter]


def rate_limiter(per_second: float, key: str | None = None) -> Limiter:
    """A leaky bucket of ``per_second`` messages in this process; under 1 a second, one message every 1/rate s."""
    # AsyncLimiter(n, 1) lets a burst of n through, so keep n >= 1 for slow rates.
    return AsyncLimiter(per_second, 1.0) if per_second >= 1 else AsyncLimiter(1, 1.0 / per_second)
