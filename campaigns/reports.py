"""Scheduled stats exports: schedules, their runs, and producing a run.

A run is produced by the code behind the live exports (:func:`registry.publication.build` to count
and protect, then the same CSV, GeoJSON or JSON writer of :mod:`registry.exports`), so a stored file
is exactly what ``GET /api/v1/stats.csv`` (or ``.geojson``, or ``/api/v1/stats``) answered at that
moment: the same suppression, the same metadata lines and HXL row. A run's content is therefore
published aggregate output, never a row about a person.

Timing is durable: a schedule's ``next_run_at`` is the clock, and the scheduler only decides when to
look. A check claims a due schedule by inserting its run (``running``, with a lease) and advancing
``next_run_at`` in one transaction; the content is produced afterwards, outside that transaction, so
a slow count never holds the writer. A crash after the claim leaves a running run whose lease runs
out, and the next check produces it; a run is unique per (schedule, period), and on PostgreSQL
several workers skip each other's locked rows, so no period is produced twice or lost. Missed
periods (the service was down for a while) are not caught up one by one: the overdue period gets one
run and the schedule moves on to its next slot after now.

Runs are kept bounded: the last :data:`KEEP_RUNS` per schedule (and of ad-hoc runs), none older
than :data:`KEEP_DAYS` days; pruning happens whenever a run is produced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.areas import Gazetteer
from registry import aggregates, audit, exports, publication, schema
from registry.aggregates import QueryError, StatsQuery
from registry.db import Database
from registry.publication import ProtectedTables
from registry.times import aware, iso

log = structlog.get_logger("beacon.reports")

FORMATS = {"csv": "text/csv", "geojson": "application/geo+json", "json": "application/json"}
EXTENSIONS = {"csv": "csv", "geojson": "geojson", "json": "json"}
INTERVALS = {"hourly": 1, "daily": 24, "weekly": 24 * 7}
MAX_EVERY_HOURS = 24 * 31
STATUSES = ("running", "done", "failed")
SCHEDULER = "scheduler"  # the actor of scheduled runs
LEASE = timedelta(minutes=15)  # a running run older than this was interrupted: produce it again
MAX_ATTEMPTS = 3  # interrupted this often, a run is given up as failed
KEEP_RUNS = 100  # per schedule, and of ad-hoc runs
KEEP_DAYS = 90
DUE_BATCH = 20
CHECK_SECONDS = 60  # how often the scheduler looks for due schedules

_s = schema.report_schedules.c
_r = schema.report_runs.c
# Every run column but the content (listings never carry it).
_RUN_COLUMNS = [c for c in schema.report_runs.c if c.name != "content"]


# -- queries and rendering ----------------------------------------------------------------------------

def query_json(query: StatsQuery) -> dict[str, Any]:
    """The stats query as stored with a schedule or run."""
    return query.describe()


def query_from_json(data: dict[str, Any]) -> StatsQuery:
    broadcast = data.get("broadcast")
    return StatsQuery(tuple(data["by"]), int(data.get("level") or 0), int(broadcast) if broadcast else None)


async def check_query(db: Database, gazetteer: Gazetteer, format: str, by: Sequence[str], level: int = 0,
                      broadcast: int | None = None) -> StatsQuery:
    """The stats query these parameters give, checked as the live endpoints check it; QueryError names the field."""
    if format not in FORMATS:
        raise QueryError("format", f"format must be one of {', '.join(FORMATS)}")
    query = aggregates.parse_query(",".join(by), str(level), None if broadcast is None else str(broadcast),
                                   gazetteer)
    if format == "geojson" and "area" not in query.by:
        raise QueryError("by", "a GeoJSON export needs area among the dimensions")
    await aggregates.check_broadcast(db, query)
    return query


@dataclass(frozen=True)
class Rendered:
    """One produced export."""

    content: str
    content_type: str
    produced_at: datetime


async def render(db: Database, gazetteer: Gazetteer, tables: ProtectedTables, min_cell: int, format: str,
                 query: StatsQuery) -> Rendered:
    """The export the live endpoint gives for ``query``, built by the same functions (QueryError if it cannot be)."""
    if format == "geojson" and "area" not in query.by:
        raise QueryError("by", "a GeoJSON export needs area among the dimensions")
    published = await publication.build(db, gazetteer, tables, query, min_cell)
    if format == "csv":
        text = exports.csv_text(published, gazetteer, min_cell)
    elif format == "geojson":  # serialised as web.json_response does
        text = json.dumps(exports.geojson(published, gazetteer, min_cell))
    elif format == "json":
        text = json.dumps(exports.as_json(published, min_cell))
    else:
        raise QueryError("format", f"format must be one of {', '.join(FORMATS)}")
    return Rendered(text, FORMATS[format], published.generated_at)


# -- schedules -----------------------------------------------------------------------------------------

def next_slot(anchor: datetime, every_hours: int, now: datetime) -> datetime:
    """The first of ``anchor``, ``anchor + every``, ``anchor + 2 every``, ... that is after ``now``."""
    anchor = aware(anchor)
    if anchor > now:
        return anchor
    step = timedelta(hours=every_hours)
    return anchor + ((now - anchor) // step + 1) * step


def interval_name(every_hours: int) -> str | None:
    return next((name for name, hours in INTERVALS.items() if hours == every_hours), None)


async def create_schedule(db: Database, *, name: str, format: str, query: StatsQuery, every_hours: int,
                          actor: str, start_at: datetime | None = None) -> int:
    """Store a schedule; its first run is due at ``start_at`` (default: now). Audited."""
    if format not in FORMATS:
        raise QueryError("format", f"format must be one of {', '.join(FORMATS)}")
    if not 1 <= every_hours <= MAX_EVERY_HOURS:
        raise QueryError("every_hours", f"every_hours must be between 1 and {MAX_EVERY_HOURS}")
    now = datetime.now(UTC)
    async with db.write() as conn:
        schedule_id = int((await conn.execute(insert(schema.report_schedules).values(
            name=name, format=format, query=query_json(query), every_hours=every_hours,
            next_run_at=aware(start_at) if start_at is not None else now, paused=False, created_by=actor,
            created_at=now, updated_at=now).returning(_s.id))).scalar_one())
        await audit.append(conn, actor, "report.schedule_created", str(schedule_id),
                           {"format": format, "every_hours": every_hours, **query_json(query)})
    return schedule_id


async def get_schedule(conn: AsyncConnection, schedule_id: int, *, deleted: bool = False) -> Any:
    """The schedule's row (None when unknown, or deleted unless ``deleted``)."""
    query = select(schema.report_schedules).where(_s.id == schedule_id)
    if not deleted:
        query = query.where(_s.deleted_at.is_(None))
    return (await conn.execute(query)).first()


async def list_schedules(conn: AsyncConnection) -> list[Any]:
    """The schedules that are not deleted, newest first."""
    return list((await conn.execute(select(schema.report_schedules).where(_s.deleted_at.is_(None))
                                    .order_by(_s.id.desc()))).all())


async def last_runs(conn: AsyncConnection, schedule_ids: Sequence[int]) -> dict[int, Any]:
    """Each schedule's latest run (without content)."""
    if not schedule_ids:
        return {}
    latest = select(func.max(_r.id)).where(_r.schedule_id.in_(list(schedule_ids))).group_by(_r.schedule_id)
    rows = (await conn.execute(select(*_RUN_COLUMNS).where(_r.id.in_(latest)))).all()
    return {int(row.schedule_id): row for row in rows}


async def change_schedule(db: Database, schedule_id: int, *, actor: str, name: str | None = None,
                          paused: bool | None = None, every_hours: int | None = None,
                          next_run_at: datetime | None = None) -> bool:
    """Rename, pause or resume, re-time a schedule; False when there is no such schedule. Audited.

    Resuming does not catch up what the pause skipped: a next run that fell in the pause moves on
    to the schedule's next slot after now.
    """
    now = datetime.now(UTC)
    async with db.write() as conn:
        query = select(schema.report_schedules).where(_s.id == schedule_id, _s.deleted_at.is_(None))
        if not db.sqlite:
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            return False
        values: dict[str, Any] = {}
        if name is not None and name != row.name:
            values["name"] = name
        if every_hours is not None and every_hours != row.every_hours:
            if not 1 <= every_hours <= MAX_EVERY_HOURS:
                raise QueryError("every_hours", f"every_hours must be between 1 and {MAX_EVERY_HOURS}")
            values["every_hours"] = every_hours
        if next_run_at is not None:
            values["next_run_at"] = aware(next_run_at)
        if paused is not None and paused != row.paused:
            values["paused"] = paused
            if not paused and "next_run_at" not in values:
                values["next_run_at"] = next_slot(row.next_run_at, values.get("every_hours", row.every_hours), now)
        if values:
            values["updated_at"] = now
            await conn.execute(update(schema.report_schedules).where(_s.id == schedule_id).values(**values))
            await audit.append(conn, actor, "report.schedule_changed", str(schedule_id),
                               {"changed": sorted(k for k in values if k != "updated_at"),
                                "paused": values.get("paused", row.paused)})
    return True


async def delete_schedule(db: Database, schedule_id: int, *, actor: str) -> bool:
    """Stop a schedule for good (its runs stay until they age out); False when unknown. Audited."""
    now = datetime.now(UTC)
    async with db.write() as conn:
        result = await conn.execute(update(schema.report_schedules).where(
            _s.id == schedule_id, _s.deleted_at.is_(None)).values(deleted_at=now, updated_at=now))
        if result.rowcount != 1:
            return False
        await audit.append(conn, actor, "report.schedule_deleted", str(schedule_id))
    return True


def schedule_view(row: Any, last_run: Any = None) -> dict[str, Any]:
    """A schedule as the API shows it."""
    query = query_from_json(row.query)
    return {
        "id": int(row.id), "name": row.name, "format": row.format, "by": list(query.by), "level": query.level,
        "broadcast": query.broadcast, "every_hours": row.every_hours, "interval": interval_name(row.every_hours),
        "next_run_at": iso(row.next_run_at), "paused": bool(row.paused), "created_by": row.created_by,
        "created_at": iso(row.created_at), "updated_at": iso(row.updated_at),
        "last_run": None if last_run is None else {
            "id": int(last_run.id), "status": last_run.status, "produced_at": iso(last_run.produced_at)},
    }


# -- runs ----------------------------------------------------------------------------------------------

async def claim_due(db: Database, now: datetime | None = None, batch: int = DUE_BATCH) -> list[int]:
    """Claim due schedules (a run each, next_run_at advanced, in one transaction) and interrupted runs.

    Returns the ids of the runs to produce now.
    """
    now = now or datetime.now(UTC)
    claimed: list[int] = []
    async with db.write() as conn:
        due = (select(_s.id, _s.format, _s.query, _s.every_hours, _s.next_run_at)
               .where(_s.deleted_at.is_(None), _s.paused.is_(False), _s.next_run_at <= now)
               .order_by(_s.next_run_at, _s.id).limit(batch))
        if not db.sqlite:
            due = due.with_for_update(skip_locked=True)
        for row in (await conn.execute(due)).all():
            period = aware(row.next_run_at)
            advanced = await conn.execute(update(schema.report_schedules).where(
                _s.id == row.id, _s.next_run_at == row.next_run_at).values(
                next_run_at=next_slot(period, row.every_hours, now)))
            if advanced.rowcount != 1:  # someone else claimed it meanwhile
                continue
            claimed.append(int((await conn.execute(insert(schema.report_runs).values(
                schedule_id=row.id, scheduled_for=period, format=row.format, query=row.query, status="running",
                requested_by=SCHEDULER, started_at=now, lease_until=now + LEASE,
                attempts=1).returning(_r.id))).scalar_one()))
        stale = (select(_r.id, _r.attempts, _r.schedule_id, _r.requested_by)
                 .where(_r.status == "running", _r.lease_until < now).order_by(_r.id).limit(batch))
        if not db.sqlite:
            stale = stale.with_for_update(skip_locked=True)
        for run in (await conn.execute(stale)).all():
            if run.attempts >= MAX_ATTEMPTS:
                await conn.execute(update(schema.report_runs).where(_r.id == run.id).values(
                    status="failed", lease_until=None, error=f"interrupted {run.attempts} times; given up"))
                await audit.append(conn, run.requested_by, "report.failed", str(run.id),
                                   {"run": int(run.id), "schedule": run.schedule_id, "reason": "interrupted"})
                continue
            await conn.execute(update(schema.report_runs).where(_r.id == run.id).values(
                lease_until=now + LEASE, attempts=run.attempts + 1))
            claimed.append(int(run.id))
    return claimed


async def produce(db: Database, gazetteer: Gazetteer, tables: ProtectedTables, min_cell: int,
                  run_id: int) -> str | None:
    """Produce a claimed run and store the file (or the failure); prune old runs. Audited.

    Returns the run's status, or None when it is not running (finished elsewhere meanwhile).
    """
    async with db.read() as conn:
        run = (await conn.execute(select(*_RUN_COLUMNS).where(_r.id == run_id, _r.status == "running"))).first()
    if run is None:
        return None
    values: dict[str, Any] = {"lease_until": None}
    try:
        rendered = await render(db, gazetteer, tables, min_cell, run.format, query_from_json(run.query))
    except QueryError as exc:  # e.g. the gazetteer changed under a stored query
        values.update(status="failed", error=f"{exc.field}: {exc.message}"[:500])
    except Exception as exc:  # noqa: BLE001 - recorded on the run; the next period tries again
        log.exception("reports.produce_failed", run=run_id)
        values.update(status="failed", error=f"internal error ({type(exc).__name__})")
    else:
        data = rendered.content.encode()
        values.update(status="done", produced_at=rendered.produced_at, content=rendered.content,
                      content_type=rendered.content_type, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    async with db.write() as conn:
        # Only the claim this process holds: a run re-claimed after its lease ran out is someone else's now.
        result = await conn.execute(update(schema.report_runs).where(
            _r.id == run_id, _r.status == "running", _r.attempts == run.attempts).values(**values))
        if result.rowcount != 1:
            return None
        pruned = await prune(conn, run.schedule_id, datetime.now(UTC))
        await audit.append(conn, run.requested_by, "report.produced" if values["status"] == "done" else
                           "report.failed", str(run_id),
                           {"run": run_id, "schedule": run.schedule_id, "format": run.format,
                            "size": values.get("size"), "pruned": pruned, **run.query})
    log.info("reports.produced", run=run_id, schedule=run.schedule_id, status=values["status"])
    return str(values["status"])


async def prune(conn: AsyncConnection, schedule_id: int | None, now: datetime, keep: int | None = None,
                days: int | None = None) -> int:
    """Delete finished runs older than ``days`` and all but the last ``keep`` of this schedule's (or ad-hoc) runs."""
    keep = KEEP_RUNS if keep is None else keep
    days = KEEP_DAYS if days is None else days
    finished = _r.status != "running"
    removed = (await conn.execute(delete(schema.report_runs).where(
        finished, _r.started_at < now - timedelta(days=days)))).rowcount or 0
    same = _r.schedule_id.is_(None) if schedule_id is None else _r.schedule_id == schedule_id
    boundary = (await conn.execute(select(_r.id).where(same).order_by(_r.id.desc()).offset(keep).limit(1))).scalar()
    if boundary is not None:
        removed += (await conn.execute(delete(schema.report_runs).where(
            same, finished, _r.id <= boundary))).rowcount or 0
    return int(removed)


async def run_due(db: Database, gazetteer: Gazetteer, tables: ProtectedTables, min_cell: int, *,
                  now: datetime | None = None, batch: int = DUE_BATCH) -> list[int]:
    """Produce every due schedule's run, and every interrupted run; returns the run ids produced."""
    produced: list[int] = []
    for _ in range(100):  # bounded: each pass claims different schedules and runs
        claimed = await claim_due(db, now, batch)
        for run_id in claimed:
            if await produce(db, gazetteer, tables, min_cell, run_id) is not None:
                produced.append(run_id)
        if len(claimed) < batch:
            break
    return produced


async def run_now(db: Database, gazetteer: Gazetteer, tables: ProtectedTables, min_cell: int, *, format: str,
                  query: StatsQuery, actor: str, schedule_id: int | None = None) -> int:
    """An on-demand run (of a schedule's query, or ad hoc), produced before returning its id."""
    now = datetime.now(UTC)
    async with db.write() as conn:
        run_id = int((await conn.execute(insert(schema.report_runs).values(
            schedule_id=schedule_id, scheduled_for=None, format=format, query=query_json(query), status="running",
            requested_by=actor, started_at=now, lease_until=now + LEASE, attempts=1).returning(_r.id))).scalar_one())
    await produce(db, gazetteer, tables, min_cell, run_id)
    return run_id


async def list_runs(conn: AsyncConnection, *, schedule_id: int | None = None, ad_hoc: bool = False,
                    status: str | None = None, before: int | None = None, limit: int = 50) -> list[Any]:
    """Runs, newest first, without their content."""
    query = (select(*_RUN_COLUMNS, schema.report_schedules.c.name.label("schedule_name"))
             .select_from(schema.report_runs.outerjoin(schema.report_schedules, _s.id == _r.schedule_id)))
    if schedule_id is not None:
        query = query.where(_r.schedule_id == schedule_id)
    elif ad_hoc:
        query = query.where(_r.schedule_id.is_(None))
    if status is not None:
        query = query.where(_r.status == status)
    if before is not None:
        query = query.where(_r.id < before)
    return list((await conn.execute(query.order_by(_r.id.desc()).limit(limit))).all())


async def get_run(conn: AsyncConnection, run_id: int) -> Any:
    """One run without its content (None when unknown)."""
    return (await conn.execute(
        select(*_RUN_COLUMNS, schema.report_schedules.c.name.label("schedule_name"))
        .select_from(schema.report_runs.outerjoin(schema.report_schedules, _s.id == _r.schedule_id))
        .where(_r.id == run_id))).first()


async def run_content(conn: AsyncConnection, run_id: int) -> Any:
    """A run's status, format, query, produced file and its type (None when unknown)."""
    return (await conn.execute(select(
        _r.id, _r.status, _r.format, _r.query, _r.produced_at, _r.content, _r.content_type, _r.schedule_id,
        schema.report_schedules.c.name.label("schedule_name"))
        .select_from(schema.report_runs.outerjoin(schema.report_schedules, _s.id == _r.schedule_id))
        .where(_r.id == run_id))).first()


def filename(run: Any) -> str:
    """The download's file name: the schedule's name (or the dimensions), the run and when it was produced."""
    source = run.schedule_name or "stats-" + "-".join(run.query["by"])
    slug = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in source.lower())
    slug = "-".join(part for part in slug.split("-") if part)[:60] or "report"
    stamp = aware(run.produced_at).strftime("%Y%m%dT%H%MZ") if run.produced_at is not None else "pending"
    return f"beacon-{slug}-run{run.id}-{stamp}.{EXTENSIONS.get(run.format, 'txt')}"


def run_view(row: Any) -> dict[str, Any]:
    """A run's metadata as the API shows it."""
    query = query_from_json(row.query)
    return {
        "id": int(row.id), "schedule_id": None if row.schedule_id is None else int(row.schedule_id),
        "schedule_name": row.schedule_name, "trigger": "schedule" if row.scheduled_for is not None else "on_demand",
        "scheduled_for": iso(row.scheduled_for), "format": row.format, "by": list(query.by), "level": query.level,
        "broadcast": query.broadcast, "status": row.status, "requested_by": row.requested_by,
        "started_at": iso(row.started_at), "produced_at": iso(row.produced_at), "content_type": row.content_type,
        "size": row.size, "sha256": row.sha256, "error": row.error,
        "filename": filename(row) if row.status == "done" else None,
        "content_url": f"/api/v1/reports/runs/{int(row.id)}/content" if row.status == "done" else None,
    }
