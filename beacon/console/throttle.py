"""Sign-in attempts, limited per client address and per username."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

WINDOW_SECONDS = 15 * 60
LIMITS = {"ip": 20, "user": 5, "token": 10}  # failures allowed per window, by the key's kind


class Throttle:
    """Failed sign-ins in a sliding window; too many block that key until the oldest one ages out.

    Kept in the web process's memory: a restart forgets, which only ever lets someone in sooner.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        found = self._failures.get(key)
        if found is None:
            return deque()
        cutoff = self._clock() - WINDOW_SECONDS
        while found and found[0] <= cutoff:
            found.popleft()
        if not found:
            del self._failures[key]
        return found

    def blocked(self, keys: Iterable[str]) -> float:
        """Seconds until every key may try again (0 when none is blocked)."""
        wait = 0.0
        for key in keys:
            recent = self._recent(key)
            if len(recent) >= LIMITS[key.partition(":")[0]]:
                wait = max(wait, recent[0] + WINDOW_SECONDS - self._clock())
        return wait

    def failed(self, keys: Iterable[str]) -> None:
        """Count one failed attempt against each key."""
        now = self._clock()
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, keys: Iterable[str]) -> None:
        """A right password clears that username's failures (not the address's)."""
        for key in keys:
            self._failures.pop(key, None)
