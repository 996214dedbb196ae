"""Scheduled reports under /api/v1/reports: schedules of stats exports, their runs and the produced files.

``admin`` creates, changes and deletes schedules and asks for on-demand runs; ``analyst`` (and
admin) lists schedules and runs and downloads the files. Every write, and every download, is
audited with the caller's name and ids, never a number about a person. The domain logic is in
:mod:`campaigns.reports`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from beacon.context import BEACON
from beacon.http import CALLER, MAX_ID, api_error, parse, record_id, requires
from campaigns import reports
from domain.vocabulary import Role
from registry import aggregates, audit
from registry.aggregates import QueryError

READERS = (Role.ANALYST,)  # admin always
Format = Literal["csv", "geojson", "json"]
Interval = Literal["hourly", "daily", "weekly"]
MAX_LIMIT = 500


def _invalid(field: str, message: str) -> web.HTTPException:
    return api_error(422, "validation_error", f"invalid field(s): {field}", [{"field": field, "message": message}])


def _not_found(what: str) -> web.HTTPException:
    return api_error(404, "not_found", f"no such {what}")


def _id(request: web.Request, what: str) -> int:
    found = record_id(request.match_info["id"])
    if found is None:  # not a number, or one no row can have (a larger one overflowed the database: 500)
        raise _not_found(what)
    return found


def _split_by(value: Any) -> Any:
    """``by`` as a list, or as the comma-separated string the stats endpoints take."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")]
    return value


def _every_hours(value: int | None, info: ValidationInfo) -> int | None:
    interval = info.data.get("interval")
    if value is not None and interval is not None and reports.INTERVALS[interval] != value:
        raise ValueError(f"every_hours={value} contradicts interval={interval!r}; give one of them")
    return value


class ScheduleIn(BaseModel):
    """A schedule as an admin writes it: the export, its stats query and how often."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    format: Format
    by: list[str] = Field(min_length=1, max_length=len(aggregates.DIMENSIONS),
                          description="dimensions, as for /api/v1/stats: " + ", ".join(aggregates.DIMENSIONS))
    level: int = Field(default=0, ge=0, description="gazetteer depth the areas are counted at")
    broadcast: int | None = Field(default=None, ge=1, le=MAX_ID, description="count that broadcast's recipients")
    interval: Interval | None = Field(default=None, description="hourly, daily or weekly (default daily)")
    every_hours: int | None = Field(default=None, ge=1, le=reports.MAX_EVERY_HOURS,
                                    description="instead of interval: every N hours")
    start_at: datetime | None = Field(default=None, description="first run (UTC when no offset); default now")

    _by = field_validator("by", mode="before")(_split_by)
    _hours = field_validator("every_hours")(_every_hours)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value.strip()


class ScheduleChange(BaseModel):
    """A change to a schedule: rename, pause or resume, re-time."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=100)
    paused: bool | None = None
    interval: Interval | None = None
    every_hours: int | None = Field(default=None, ge=1, le=reports.MAX_EVERY_HOURS)
    next_run_at: datetime | None = None

    _hours = field_validator("every_hours")(_every_hours)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("name must not be blank")
        return value.strip() if value is not None else None


class RunIn(BaseModel):
    """An on-demand run: of a schedule (``schedule``), or of an ad-hoc query (``format`` and ``by``)."""

    model_config = ConfigDict(extra="forbid")
    schedule: int | None = Field(default=None, ge=1, le=MAX_ID)
    format: Format | None = None
    by: list[str] | None = Field(default=None, min_length=1, max_length=len(aggregates.DIMENSIONS))
    level: int | None = Field(default=None, ge=0)
    broadcast: int | None = Field(default=None, ge=1, le=MAX_ID)

    _by = field_validator("by", mode="before")(_split_by)


async def _query(request: web.Request, format: str, by: list[str], level: int | None,
                 broadcast: int | None) -> aggregates.StatsQuery:
    beacon = request.app[BEACON]
    try:
        return await reports.check_query(beacon.db, beacon.gazetteer, format, by, level or 0, broadcast)
    except QueryError as exc:
        raise _invalid(exc.field, exc.message) from None


async def _schedule_json(request: web.Request, schedule_id: int) -> dict[str, Any]:
    async with request.app[BEACON].db.read() as conn:
        row = await reports.get_schedule(conn, schedule_id)
        if row is None:
            raise _not_found("schedule")
        last = await reports.last_runs(conn, [schedule_id])
    return reports.schedule_view(row, last.get(schedule_id))


@requires()
async def create_schedule(request: web.Request) -> web.Response:
    """Schedule a stats export (admin)."""
    body: ScheduleIn = await parse(request, ScheduleIn)
    query = await _query(request, body.format, body.by, body.level, body.broadcast)
    every = body.every_hours or reports.INTERVALS[body.interval or "daily"]
    schedule_id = await reports.create_schedule(request.app[BEACON].db, name=body.name, format=body.format,
                                                query=query, every_hours=every, actor=request[CALLER].name,
                                                start_at=body.start_at)
    return web.json_response(await _schedule_json(request, schedule_id), status=201)


@requires(*READERS)
async def list_schedules(request: web.Request) -> web.Response:
    """The schedules that are not deleted, newest first, each with its latest run."""
    async with request.app[BEACON].db.read() as conn:
        rows = await reports.list_schedules(conn)
        last = await reports.last_runs(conn, [int(r.id) for r in rows])
    return web.json_response({"items": [reports.schedule_view(r, last.get(int(r.id))) for r in rows]})


@requires(*READERS)
async def get_schedule(request: web.Request) -> web.Response:
    """One schedule."""
    return web.json_response(await _schedule_json(request, _id(request, "schedule")))


@requires()
async def change_schedule(request: web.Request) -> web.Response:
    """Rename, pause, resume or re-time a schedule (admin)."""
    schedule_id = _id(request, "schedule")
    body: ScheduleChange = await parse(request, ScheduleChange)
    if not body.model_fields_set:
        raise _invalid("body", "give at least one of: " + ", ".join(ScheduleChange.model_fields))
    every = body.every_hours or (reports.INTERVALS[body.interval] if body.interval else None)
    changed = await reports.change_schedule(request.app[BEACON].db, schedule_id, actor=request[CALLER].name,
                                            name=body.name, paused=body.paused, every_hours=every,
                                            next_run_at=body.next_run_at)
    if not changed:
        raise _not_found("schedule")
    return web.json_response(await _schedule_json(request, schedule_id))


@requires()
async def delete_schedule(request: web.Request) -> web.Response:
    """Stop a schedule for good; its runs stay until they age out (admin)."""
    if not await reports.delete_schedule(request.app[BEACON].db, _id(request, "schedule"), actor=request[CALLER].name):
        raise _not_found("schedule")
    return web.Response(status=204)


@requires()
async def create_run(request: web.Request) -> web.Response:
    """Produce a report now: a schedule's, or an ad-hoc query's (admin)."""
    beacon = request.app[BEACON]
    body: RunIn = await parse(request, RunIn)
    schedule_id = None
    if body.schedule is not None:
        extra = [f for f in ("format", "by", "level", "broadcast") if f in body.model_fields_set]
        if extra:
            raise _invalid(extra[0], "give either a schedule or a query, not both")
        async with beacon.db.read() as conn:
            row = await reports.get_schedule(conn, body.schedule)
        if row is None:
            raise _not_found("schedule")
        schedule_id = int(row.id)
        format = row.format
        query = await _query(request, format, list(row.query["by"]), row.query.get("level"),
                             row.query.get("broadcast"))
    else:
        for field in ("format", "by"):
            if getattr(body, field) is None:
                raise _invalid(field, f"{field} is required without a schedule")
        assert body.format is not None and body.by is not None
        format = body.format
        query = await _query(request, format, body.by, body.level, body.broadcast)
    run_id = await reports.run_now(beacon.db, beacon.gazetteer, beacon.tables, beacon.settings.min_cell,
                                   format=format, query=query, actor=request[CALLER].name, schedule_id=schedule_id)
    async with beacon.db.read() as conn:
        run = await reports.get_run(conn, run_id)
    return web.json_response(reports.run_view(run), status=201)


def _int_param(request: web.Request, name: str, low: int = 1, high: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise _invalid(name, f"{name} must be a whole number") from None
    if value < low or value > (high or MAX_ID):
        raise _invalid(name, f"{name} must be between {low} and {high or MAX_ID}")
    return value


@requires(*READERS)
async def list_runs(request: web.Request) -> web.Response:
    """Runs, newest first: of one schedule (``schedule=ID``), ad hoc (``schedule=none``) or all."""
    raw_schedule = request.query.get("schedule")
    ad_hoc = raw_schedule == "none"
    schedule_id = None if ad_hoc else _int_param(request, "schedule")
    status = request.query.get("status") or None
    if status is not None and status not in reports.STATUSES:
        raise _invalid("status", f"status must be one of {', '.join(reports.STATUSES)}")
    limit = _int_param(request, "limit", 1, MAX_LIMIT) or 50
    before = _int_param(request, "before")
    async with request.app[BEACON].db.read() as conn:
        if schedule_id is not None and await reports.get_schedule(conn, schedule_id, deleted=True) is None:
            raise _not_found("schedule")
        rows = await reports.list_runs(conn, schedule_id=schedule_id, ad_hoc=ad_hoc, status=status, before=before,
                                       limit=limit)
    return web.json_response({"items": [reports.run_view(r) for r in rows]})


@requires(*READERS)
async def get_run(request: web.Request) -> web.Response:
    """One run's metadata."""
    async with request.app[BEACON].db.read() as conn:
        run = await reports.get_run(conn, _id(request, "run"))
    if run is None:
        raise _not_found("run")
    return web.json_response(reports.run_view(run))


@requires(*READERS)
async def run_content(request: web.Request) -> web.Response:
    """The produced file, as the live export would have served it; audited."""
    beacon = request.app[BEACON]
    run_id = _id(request, "run")
    async with beacon.db.read() as conn:
        run = await reports.run_content(conn, run_id)
    if run is None:
        raise _not_found("run")
    if run.status != "done":
        raise api_error(409, "not_ready", f"run {run_id} is {run.status}: it has no file")
    async with beacon.db.write() as conn:
        await audit.append(conn, request[CALLER].name, "report.read", str(run_id),
                           {"run": run_id, "schedule": run.schedule_id, "format": run.format})
    return web.Response(text=run.content, content_type=run.content_type, charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{reports.filename(run)}"'})


# -- OpenAPI ---------------------------------------------------------------------------------------------

_WHEN = {"type": ["string", "null"], "format": "date-time"}
_QUERY = {"by": {"type": "array", "items": {"enum": list(aggregates.DIMENSIONS)}}, "level": {"type": "integer"},
          "broadcast": {"type": ["integer", "null"]}}
_SCHEDULE = {
    "type": "object",
    "required": ["id", "name", "format", "by", "level", "broadcast", "every_hours", "interval", "next_run_at",
                 "paused", "created_by", "created_at", "updated_at", "last_run"],
    "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "format": {"enum": list(reports.FORMATS)}, **_QUERY,
        "every_hours": {"type": "integer", "minimum": 1}, "interval": {"enum": [*reports.INTERVALS, None]},
        "next_run_at": {"type": "string", "format": "date-time"}, "paused": {"type": "boolean"},
        "created_by": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "last_run": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["id", "status", "produced_at"],
                                                  "properties": {"id": {"type": "integer"},
                                                                 "status": {"enum": list(reports.STATUSES)},
                                                                 "produced_at": _WHEN}}]},
    },
    "additionalProperties": False,
}
_RUN = {
    "type": "object",
    "required": ["id", "schedule_id", "schedule_name", "trigger", "scheduled_for", "format", "by", "level",
                 "broadcast", "status", "requested_by", "started_at", "produced_at", "content_type", "size",
                 "sha256", "error", "filename", "content_url"],
    "properties": {
        "id": {"type": "integer"}, "schedule_id": {"type": ["integer", "null"]},
        "schedule_name": {"type": ["string", "null"]}, "trigger": {"enum": ["schedule", "on_demand"]},
        "scheduled_for": _WHEN, "format": {"enum": list(reports.FORMATS)}, **_QUERY,
        "status": {"enum": list(reports.STATUSES)}, "requested_by": {"type": "string"},
        "started_at": {"type": "string", "format": "date-time"}, "produced_at": _WHEN,
        "content_type": {"type": ["string", "null"]}, "size": {"type": ["integer", "null"]},
        "sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"}, "error": {"type": ["string", "null"]},
        "filename": {"type": ["string", "null"]}, "content_url": {"type": ["string", "null"]},
    },
    "additionalProperties": False,
}


def openapi_schemas() -> dict[str, Any]:
    """The component schemas these endpoints use (merge into "components"/"schemas")."""
    def model(cls: type[BaseModel]) -> dict[str, Any]:
        return cls.model_json_schema(ref_template="#/components/schemas/{model}")

    return {"ReportSchedule": _SCHEDULE, "ReportRun": _RUN, "ReportScheduleIn": model(ScheduleIn),
            "ReportScheduleChange": model(ScheduleChange), "ReportRunIn": model(RunIn)}


def openapi_paths() -> dict[str, Any]:
    """These endpoints for the OpenAPI document (merge into its "paths")."""
    def ref(name: str) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{name}"}

    def answer(schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    def errors(*codes: int) -> dict[str, Any]:
        texts = {401: "no valid token", 403: "role may not", 404: "not found", 409: "the run has no file",
                 422: "invalid input"}
        return {str(c): answer(ref("Error"), texts[c]) for c in codes}

    def body(name: str) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": ref(name)}}}

    items = {"type": "object", "required": ["items"], "properties": {"items": {"type": "array"}}}
    ident = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]
    return {
        "/api/v1/reports/schedules": {
            "post": {"summary": "Schedule a stats export (admin)", "requestBody": body("ReportScheduleIn"),
                     "responses": {"201": answer(ref("ReportSchedule"), "the schedule"), **errors(401, 403, 422)}},
            "get": {"summary": "Scheduled exports that are not deleted, newest first",
                    "responses": {"200": answer({**items, "properties": {"items": {
                        "type": "array", "items": ref("ReportSchedule")}}}, "schedules"), **errors(401, 403)}},
        },
        "/api/v1/reports/schedules/{id}": {
            "get": {"summary": "One schedule", "parameters": ident,
                    "responses": {"200": answer(ref("ReportSchedule"), "the schedule"), **errors(401, 403, 404)}},
            "patch": {"summary": "Rename, pause, resume or re-time a schedule (admin)", "parameters": ident,
                      "requestBody": body("ReportScheduleChange"),
                      "responses": {"200": answer(ref("ReportSchedule"), "the schedule"),
                                    **errors(401, 403, 404, 422)}},
            "delete": {"summary": "Stop a schedule for good; its runs stay until they age out (admin)",
                       "parameters": ident,
                       "responses": {"204": {"description": "deleted"}, **errors(401, 403, 404)}},
        },
        "/api/v1/reports/runs": {
            "post": {"summary": "Produce a report now, of a schedule or of an ad-hoc query (admin)",
                     "requestBody": body("ReportRunIn"),
                     "responses": {"201": answer(ref("ReportRun"), "the run (done or failed)"),
                                   **errors(401, 403, 404, 422)}},
            "get": {"summary": "Runs, newest first, without their files", "parameters": [
                {"name": "schedule", "in": "query", "schema": {"type": "string"},
                 "description": "a schedule id, or none for ad-hoc runs"},
                {"name": "status", "in": "query", "schema": {"enum": list(reports.STATUSES)}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
                {"name": "before", "in": "query", "schema": {"type": "integer"}, "description": "runs before this id"},
            ], "responses": {"200": answer({**items, "properties": {"items": {
                "type": "array", "items": ref("ReportRun")}}}, "runs"), **errors(401, 403, 404, 422)}},
        },
        "/api/v1/reports/runs/{id}": {"get": {
            "summary": "A run's metadata", "parameters": ident,
            "responses": {"200": answer(ref("ReportRun"), "the run"), **errors(401, 403, 404)}}},
        "/api/v1/reports/runs/{id}/content": {"get": {
            "summary": "The produced file, as the live export served it (audited)", "parameters": ident,
            "responses": {"200": {"description": "the file, with Content-Disposition", "content": {
                "text/csv": {"schema": {"type": "string"}}, "application/geo+json": {"schema": {"type": "object"}},
                "application/json": {"schema": {"type": "object"}}}},
                **errors(401, 403, 404, 409)}}},
    }


def setup(app: web.Application) -> None:
    """Mount these routes."""
    app.router.add_post("/api/v1/reports/schedules", create_schedule)
    app.router.add_get("/api/v1/reports/schedules", list_schedules)
    app.router.add_get("/api/v1/reports/schedules/{id}", get_schedule)
    app.router.add_patch("/api/v1/reports/schedules/{id}", change_schedule)
    app.router.add_delete("/api/v1/reports/schedules/{id}", delete_schedule)
    app.router.add_post("/api/v1/reports/runs", create_run)
    app.router.add_get("/api/v1/reports/runs", list_runs)
    app.router.add_get("/api/v1/reports/runs/{id}", get_run)
    app.router.add_get("/api/v1/reports/runs/{id}/content", run_content)
