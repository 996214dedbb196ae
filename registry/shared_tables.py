"""The tables a partner fetches under its arrangement: updated once per period of the arrangement's frequency.

An arrangement fixes how often the shared data is updated: hourly, daily, weekly or monthly. Periods
are UTC calendar periods (the hour, the day, the ISO week from Monday, the month); the latest scheduled
update is the start of the current one. A partner's fetch is answered from the table of the current
period: the first fetch of a query (dimensions, level, broadcast) in a period counts and protects it,
and stores the protected table; every later fetch of that query in the period gets the same table,
whatever changed in the registry since, and says so with the same ``data_as_of`` and ``generated_at``.
The next period's first fetch counts again. Fresher figures within a period are what a special run,
approved by an admin, is for.

The tables are kept in ``special_runs`` rows of status ``scheduled`` (``requested_at`` is the period's
start, ``purpose`` names the query), so there is no table of their own; the register does not count
them as special runs, the runs endpoints never show them, and a period's rows are deleted when the
next period's first table is stored. The content is the protected table only, as every export publishes
it: suppressed aggregates, never a raw count below the threshold nor a row about a person.

The registry cannot say what it held at a past moment (people move, erase, answer check-ins), so a
period's table is the registry as it was at the period's first fetch, not at the period's start; its
``generated_at`` says when that was. Two queries first fetched at different moments of one period can
therefore disagree on totals by what changed in between.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.areas import Gazetteer
from registry import publication, schema
from registry.aggregates import StatsQuery
from registry.arrangements import SCHEDULED, Arrangement
from registry.db import Database
from registry.disclosure import ALL, Entry, Table
from registry.publication import ProtectedTables, Published
from registry.times import aware

FREQUENCIES = ("hourly", "daily", "weekly", "monthly")
SCHEDULE = "schedule"  # the requested_by of a period's table


def period(frequency: str, moment: datetime) -> tuple[datetime, datetime]:
    """The start (the latest scheduled update) and end (the next one) of the update period holding ``moment``.

    A frequency recorded as free text before the choice was fixed is read as daily when it is not one of
    :data:`FREQUENCIES`.
    """
    moment = aware(moment).astimezone(UTC)
    kind = frequency.strip().lower()
    if kind == "hourly":
        start = moment.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "weekly":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if kind == "monthly":
        start = day.replace(day=1)
        return start, (start + timedelta(days=32)).replace(day=1)
    return day, day + timedelta(days=1)


def _purpose(query: StatsQuery) -> str:
    broadcast = "-" if query.broadcast is None else str(query.broadcast)
    return f"scheduled update: by={','.join(query.by)} level={query.level} broadcast={broadcast}"


def _entry(entry: Entry) -> list[Any]:
    return [[None if v is ALL else v for v in entry.key], entry.count, entry.suppressed]


def _unentry(data: list[Any]) -> Entry:
    key, count, suppressed = data
    return Entry(tuple(ALL if v is None else v for v in key), count, bool(suppressed))


def dump(published: Published) -> str:
    """A protected table as stored for its period."""
    table = published.table
    return json.dumps({"dims": list(table.dims), "min_cell": table.min_cell,
                       "cells": [_entry(e) for e in table.cells], "totals": [_entry(e) for e in table.totals],
                       "total": _entry(table.total), "generated_at": published.generated_at.isoformat(),
                       "data_as_of": published.data_as_of.isoformat() if published.data_as_of else None},
                      ensure_ascii=False)


def load(content: str, query: StatsQuery) -> Published:
    """A stored period's table, as it was published."""
    data = json.loads(content)
    table = Table(tuple(data["dims"]), int(data["min_cell"]), tuple(_unentry(e) for e in data["cells"]),
                  tuple(_unentry(e) for e in data["totals"]), _unentry(data["total"]))
    as_of = data["data_as_of"]
    return Published(query, table, datetime.fromisoformat(data["generated_at"]),
                     datetime.fromisoformat(as_of) if as_of else None)


async def _stored(conn: AsyncConnection, arrangement: Arrangement, query: StatsQuery, start: datetime,
                  end: datetime) -> str | None:
    r = schema.special_runs.c
    content: str | None = (await conn.execute(select(r.content).where(
        r.arrangement_id == arrangement.id, r.status == SCHEDULED, r.purpose == _purpose(query),
        r.requested_at >= start, r.requested_at < end).order_by(r.id).limit(1))).scalar()
    return content


async def current(db: Database, gazetteer: Gazetteer, tables: ProtectedTables, arrangement: Arrangement,
                  query: StatsQuery, min_cell: int, moment: datetime) -> Published:
    """The table of ``query`` for the period holding ``moment`` (its frequency and period set); counted,
    protected and stored at the period's first fetch. QueryError when the query cannot be answered."""
    start, end = period(arrangement.terms.frequency, moment)
    async with db.read() as conn:
        content = await _stored(conn, arrangement, query, start, end)
    if content is None:
        content = await _store(db, gazetteer, tables, arrangement, query, min_cell, start, end)
    return replace(load(content, query), frequency=arrangement.terms.frequency, updated_at=start, next_update_at=end)


async def _store(db: Database, gazetteer: Gazetteer, tables: ProtectedTables, arrangement: Arrangement,
                 query: StatsQuery, min_cell: int, start: datetime, end: datetime) -> str:
    published = await publication.build(db, gazetteer, tables, query, min_cell)
    r = schema.special_runs.c
    async with db.write() as conn:
        await conn.execute(delete(schema.special_runs).where(
            r.arrangement_id == arrangement.id, r.status == SCHEDULED, r.requested_at < start))
        await conn.execute(schema.special_runs.insert().values(
            arrangement_id=arrangement.id, dimensions=list(query.by), level=query.level, purpose=_purpose(query),
            status=SCHEDULED, requested_by=SCHEDULE, requested_at=start, produced_at=published.generated_at,
            content=dump(published)))
        content = await _stored(conn, arrangement, query, start, end)  # the first stored, if two raced
    return content or dump(published)
