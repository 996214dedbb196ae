"""Published tables: count, protect, and remember the protected tables by their exact counts.

Every number that leaves the registry in aggregate goes through :func:`build`; the API, the
console and the scheduled reports publish from what it returns.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.areas import Gazetteer
from registry import aggregates, disclosure
from registry.aggregates import StatsQuery
from registry.db import Database
from registry.disclosure import Table


def _stamp(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None


BIG_TABLE = 200  # cells: protecting more takes a while, so it runs off the event loop


@dataclass(frozen=True)
class Published:
    """One protected table and what it was made from."""

    query: StatsQuery
    table: Table
    generated_at: datetime
    data_as_of: datetime | None
    # A partner's table, updated once a period (registry.shared_tables): how often, the period's start
    # (the latest scheduled update) and the next update. None for tables counted on every call.
    frequency: str | None = None
    updated_at: datetime | None = None
    next_update_at: datetime | None = None

    def schedule(self) -> dict[str, str | None]:
        """The update schedule as exports state it (empty for a table counted on every call)."""
        if self.frequency is None:
            return {}
        return {"update_frequency": self.frequency, "updated_at": _stamp(self.updated_at),
                "next_update_at": _stamp(self.next_update_at)}


class ProtectedTables:
    """The last protected tables by their exact counts.

    Protection is a pure function of the counts, the dimensions and the threshold, and counts
    change far less often than the overview, the Aggregates page and report schedules ask for them:
    the same counts are protected once. A table with any count changed is a new key.
    """

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._tables: OrderedDict[tuple[Any, ...], Table] = OrderedDict()

    async def protect(self, counts: dict[tuple[str, ...], int], dims: Sequence[str], min_cell: int) -> Table:
        """The protected table for these counts, from the cache when the same counts were protected lately."""
        key = (tuple(dims), min_cell, frozenset(counts.items()))
        found = self._tables.get(key)
        if found is not None:
            self._tables.move_to_end(key)
            return found
        if len(counts) > BIG_TABLE:  # let the other requests through meanwhile
            table = await asyncio.to_thread(disclosure.protect, counts, dims, min_cell)
        else:
            table = disclosure.protect(counts, dims, min_cell)
        self._tables[key] = table
        while len(self._tables) > self._size:
            self._tables.popitem(last=False)
        return table


async def build(db: Database, gazetteer: Gazetteer, tables: ProtectedTables, query: StatsQuery,
                min_cell: int) -> Published:
    """Count and protect one table (what every aggregate export publishes from); QueryError if it cannot be."""
    counts = await aggregates.count(db, gazetteer, query)
    table = await tables.protect(counts.cells, query.by, min_cell)
    return Published(query, table, datetime.now(UTC), counts.data_as_of)
