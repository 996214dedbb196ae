"""Rate limiters for channel tests: each records its rate and the sends it let through, and can be held shut.

Hand :class:`Gates` to a provider as its ``limiters`` factory; a test then says which rate each limiter was
made for and holds sends back or lets them go, instead of measuring time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Gate:
    """One limiter: sends pass while it is open and wait while it is shut."""

    def __init__(self, gates: Gates, rate: float, *, shut: bool) -> None:
        self.rate = rate
        self.key: str | None = None  # what the provider named the limit, None when per process
        self.waiting = 0  # sends held at the gate now
        self.passed = 0  # sends let through so far
        self._gates = gates
        self._open = asyncio.Event()
        if not shut:
            self._open.set()

    async def acquire(self) -> None:
        """Wait until the gate is open."""
        self.waiting += 1
        await self._gates.changed()
        await self._open.wait()
        self.waiting -= 1
        self.passed += 1
        await self._gates.changed()

    def open(self) -> None:
        """Let every held and later send through."""
        self._open.set()


class Gates:
    """A limiter factory: the gates it made, in order; while ``shut`` is set it makes them shut."""

    def __init__(self) -> None:
        self.made: list[Gate] = []
        self.shut = False
        self._changed = asyncio.Condition()

    def __call__(self, rate: float, key: str | None = None) -> Gate:
        gate = Gate(self, rate, shut=self.shut)
        gate.key = key
        self.made.append(gate)
        return gate

    @property
    def rates(self) -> list[float]:
        """The rate of each gate made, in order."""
        return [gate.rate for gate in self.made]

    async def changed(self) -> None:
        """Wake whoever waits in :meth:`until`."""
        async with self._changed:
            self._changed.notify_all()

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate`` holds (checked whenever a send reaches or passes a gate)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout=10)
