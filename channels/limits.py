"""Rate limits on sends, made by a factory the providers take so tests can hand in their own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from aiolimiter import AsyncLimiter


class Limiter(Protocol):
    """Lets a send through when the rate allows it."""

    async def acquire(self) -> None:
        """Wait for room for one message."""


Limiters = Callable[[float], Limiter]  # messages per second -> a limiter for that rate


def rate_limiter(per_second: float) -> Limiter:
    """A leaky bucket of ``per_second`` messages; under 1 a second, one message every 1/rate seconds."""
    # AsyncLimiter(n, 1) lets a burst of n through, so keep n >= 1 for slow rates.
    return AsyncLimiter(per_second, 1.0) if per_second >= 1 else AsyncLimiter(1, 1.0 / per_second)
