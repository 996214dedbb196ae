"""Provider rate limits shared by every process on one PostgreSQL database.

A provider's limit is per account or sender, not per process: two workers each pacing a long code at
1 message a second would send 2. Each limit is one row of ``send_rates`` holding its *theoretical
arrival time* (GCRA, the virtual-scheduling form of a token bucket): the time at which the next
message may leave. A process reserves a few messages at once with one statement that moves that time
on by ``n / rate`` and learns when its reserved messages may leave; it then lets them out evenly
spaced. No message leaves earlier than the schedule allows, whichever process sends it, and no burst is
allowed (the bucket holds one message). Times come from the database clock, so the processes' clocks
need not agree.

A process that dies holding reservations only wastes them (at most ``CHUNK_SECONDS`` of the rate).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

from sqlalchemy import text

from channels.limits import Limiter, rate_limiter
from registry.db import Database

# At most this much of a rate is reserved by one statement: few round trips at high rates, little
# capacity wasted by a process that stops wanting it (or dies) at low ones.
CHUNK_SECONDS = 0.25

_RESERVE = text("""
    INSERT INTO send_rates AS r (key, tat)
    VALUES (:key, extract(epoch FROM statement_timestamp()) + :span)
    ON CONFLICT (key) DO UPDATE SET tat = greatest(r.tat, extract(epoch FROM statement_timestamp())) + :span
    RETURNING r.tat, extract(epoch FROM statement_timestamp())::float8 AS now
""")


class SharedBucket:
    """One provider limit, paced across every process through its ``send_rates`` row."""

    def __init__(self, db: Database, key: str, per_second: float) -> None:
        self._db = db
        self._key = key
        self._interval = 1.0 / per_second
        self._chunk = max(1, math.floor(per_second * CHUNK_SECONDS))
        self._slots: deque[float] = deque()  # time.monotonic() at which each reserved message may leave
        self._lock = asyncio.Lock()
        self._waiting = 0

    async def acquire(self) -> None:
        """Wait until this process's next reserved message may leave, reserving more when none is left."""
        self._waiting += 1
        try:
            async with self._lock:
                # A reservation nobody took in time (its caller gave up) is dropped rather than sent late,
                # where it would crowd the slots that follow it.
                while self._slots and self._slots[0] < time.monotonic() - self._interval:
                    self._slots.popleft()
                if not self._slots:
                    await self._reserve(min(self._waiting, self._chunk))
                at = self._slots.popleft()
        finally:
            self._waiting -= 1
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _reserve(self, count: int) -> None:
        async with self._db.write() as conn:
            row = (await conn.execute(_RESERVE, {"key": self._key, "span": count * self._interval})).one()
        local = time.monotonic()
        first = float(row.tat) - count * self._interval  # the database time the first reserved message may leave
        self._slots.extend(local + max(0.0, first + i * self._interval - float(row.now)) for i in range(count))


class SharedRates:
    """A limiter factory for providers: named limits shared through PostgreSQL, the rest per process."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __call__(self, per_second: float, key: str | None = None) -> Limiter:
        if key is None:
            return rate_limiter(per_second)
        return SharedBucket(self._db, key, per_second)
