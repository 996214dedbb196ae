"""The public table: registered people by top-level area, protected at the public minimum cell.

Computed on a schedule and kept here; the public page serves this copy, so no request (anonymous,
from anywhere) ever makes the registry count, and how often the numbers can change is the schedule's.
"""

from __future__ import annotations

from domain.areas import Gazetteer
from registry import publication
from registry.aggregates import StatsQuery
from registry.db import Database
from registry.publication import ProtectedTables, Published

QUERY = StatsQuery(("area",), 0)  # the coarsest table Beacon publishes


class PublicTable:
    """The last published public table (None until the first refresh)."""

    def __init__(self) -> None:
        self.current: Published | None = None

    async def refresh(self, db: Database, gazetteer: Gazetteer, tables: ProtectedTables, min_cell: int) -> Published:
        """Count and protect the table again and keep it."""
        self.current = await publication.build(db, gazetteer, tables, QUERY, min_cell)
        return self.current
