"""Sharing arrangements under /api/v1/arrangements: the register, and special runs on demand.

An admin records arrangements; auditors and admins read the register with each arrangement's use.
A partner asks for a special run under its arrangement; an admin approves or rejects it; only an
approved run is produced, and the partner downloads its (suppressed) table. Everything is audited
with the arrangement's id as the subject.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import select, update

from beacon import api_stats, sharing
from beacon.context import BEACON, Beacon
from beacon.http import CALLER, api_error, parse, path_id, requires
from domain.vocabulary import Role
from registry import aggregates, arrangements, audit, exports, schema
from registry.aggregates import QueryError, StatsQuery
from registry.arrangements import Arrangement, Terms

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Dimension = Literal["area", "nationality", "gender", "age_band", "language", "channel", "status", "source"]
Format = Literal["json", "csv", "geojson", "hxl"]
Frequency = Literal["hourly", "daily", "weekly", "monthly"]  # registry.shared_tables.FREQUENCIES


class ArrangementIn(BaseModel):
    """An arrangement as an admin records it."""

    model_config = ConfigDict(extra="forbid")

    partner: Text
    contact: Text
    purposes: list[Text] = Field(min_length=1, max_length=20)
    dimensions: list[Dimension] = Field(min_length=1)
    area_level: int = Field(ge=0, le=10)
    min_cell: int = Field(ge=3, le=10_000)
    formats: list[Format] = Field(min_length=1)
    frequency: Frequency = Field(description="how often the partner's tables are updated: once per "
                                                     "UTC hour, day, week (from Monday) or month")
    starts_on: date
    ends_on: date
    legal_basis: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]

    @model_validator(mode="after")
    def _dates(self) -> ArrangementIn:
        if self.ends_on <= self.starts_on:
            raise ValueError("ends_on must be after starts_on")
        return self


class EndIn(BaseModel):
    """An admin ending an arrangement early: the new end date (omitted: today, so at once) and why."""

    model_config = ConfigDict(extra="forbid")

    ends_on: date | None = Field(default=None, description="the first day it no longer works: today or later, "
                                                           "before its current end date; omitted: today")
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class RunIn(BaseModel):
    """A special run as a partner asks for it."""

    model_config = ConfigDict(extra="forbid")

    dimensions: list[Dimension] = Field(min_length=1, max_length=4)
    level: int = Field(default=0, ge=0, le=10)
    purpose: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class Decision(BaseModel):
    """An admin's decision on a requested run."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]


def _invalid(field: str, message: str) -> web.HTTPException:
    return api_error(422, "validation_error", f"invalid field(s): {field}", [{"field": field, "message": message}])


def terms_of(beacon: Beacon, body: ArrangementIn) -> Terms | tuple[str, str]:
    """The terms to record, or (field, message) for what this service cannot accept (API and console)."""
    if body.min_cell < beacon.settings.min_cell:
        return "min_cell", f"min_cell may not be below the service's ({beacon.settings.min_cell})"
    if body.area_level > aggregates.max_level(beacon.gazetteer):
        return "area_level", "the gazetteer has no such level"
    if len(set(body.dimensions)) != len(body.dimensions) or len(set(body.formats)) != len(body.formats):
        return "dimensions", "a dimension or format is listed twice"
    return Terms(body.partner, body.contact, tuple(body.purposes), tuple(body.dimensions), body.area_level,
                 body.min_cell, tuple(body.formats), body.frequency, body.starts_on, body.ends_on, body.legal_basis)


@requires()
async def create_arrangement(request: web.Request) -> web.Response:
    """Record an arrangement (admin)."""
    body = await parse(request, ArrangementIn)
    terms = terms_of(request.app[BEACON], body)
    if isinstance(terms, tuple):
        raise _invalid(*terms)
    async with request.app[BEACON].db.write() as conn:
        found = await arrangements.record(conn, terms, request[CALLER].name)
    return web.json_response(found.as_json(), status=201)


@requires(Role.AUDITOR)
async def list_arrangements(request: web.Request) -> web.Response:
    """The register of arrangements with their use (auditor, admin); the listing is audited."""
    today = arrangements.today()
    async with request.app[BEACON].db.write() as conn:
        found = await arrangements.register(conn)
        await audit.append(conn, request[CALLER].name, "arrangement.listed", None, {"count": len(found)})
    return web.json_response({"items": [{**a.as_json(), "in_force": a.in_force(today), "usage": usage}
                                        for a, usage in found]})


async def end_early(beacon: Beacon, arrangement_id: int, ends_on: date | None, reason: str,
                    actor: str) -> Arrangement | tuple[int, str, str]:
    """End an arrangement early (API and console): the changed arrangement, or (status, error, message)."""
    today = arrangements.today()
    day = ends_on or today
    async with beacon.db.write() as conn:
        found = await arrangements.find(conn, arrangement_id)
        if found is None:
            return 404, "not_found", "no such arrangement"
        if found.ended(today):
            return 409, "conflict", f"the arrangement already ended on {found.terms.ends_on.isoformat()}"
        if day < today:
            return 422, "ends_on", "ends_on may not be in the past"
        if day >= found.terms.ends_on:
            return 422, "ends_on", f"an arrangement can only be ended before {found.terms.ends_on.isoformat()}"
        ended = await arrangements.end_early(conn, found, day, reason, actor)
    if ended is None:
        return 409, "conflict", "the arrangement was changed meanwhile"
    return ended


@requires()
async def end_arrangement(request: web.Request) -> web.Response:
    """End an arrangement early (admin): from its new end date on, its partner tokens are refused."""
    arrangement_id = path_id(request, "arrangement")
    body = await parse(request, EndIn)
    ended = await end_early(request.app[BEACON], arrangement_id, body.ends_on, body.reason, request[CALLER].name)
    if isinstance(ended, tuple):
        status, code, message = ended
        if status == 422:
            raise _invalid(code, message)
        raise api_error(status, code, message)
    return web.json_response(ended.as_json())


async def _arrangement(request: web.Request) -> Arrangement:
    """The arrangement in the path; a partner only its own, and only while it is in force (403, audited)."""
    arrangement_id = path_id(request, "arrangement")
    caller = request[CALLER]
    if caller.role == Role.PARTNER and caller.arrangement_id != arrangement_id:
        raise await sharing.refuse(request, caller.arrangement_id, "other_arrangement")
    async with request.app[BEACON].db.read() as conn:
        found = await arrangements.find(conn, arrangement_id)
    if found is None:
        raise api_error(404, "not_found", "no such arrangement")
    if caller.role == Role.PARTNER and (reason := found.not_in_force(arrangements.today())) is not None:
        raise await sharing.refuse(request, found.id, reason)
    return found


def _run_json(row: Any) -> dict[str, Any]:
    def when(moment: datetime | None) -> str | None:
        return exports.stamp(moment)

    return {"id": row.id, "arrangement": row.arrangement_id, "dimensions": list(row.dimensions),
            "level": row.level, "purpose": row.purpose, "status": row.status, "requested_by": row.requested_by,
            "requested_at": when(row.requested_at), "decided_by": row.decided_by, "decided_at": when(row.decided_at),
            "produced_at": when(row.produced_at)}


async def _run(request: web.Request, arrangement: Arrangement) -> Any:
    run_id = path_id(request, "run", "run_id")
    r = schema.special_runs.c
    async with request.app[BEACON].db.read() as conn:
        row = (await conn.execute(select(schema.special_runs).where(
            r.id == run_id, r.arrangement_id == arrangement.id, r.status != arrangements.SCHEDULED))).first()
    if row is None:
        raise api_error(404, "not_found", "no such run")
    return row


@requires(Role.PARTNER)
async def request_run(request: web.Request) -> web.Response:
    """A partner asks for a special run under its arrangement; it waits for an admin's decision."""
    found = await _arrangement(request)
    body = await parse(request, RunIn)
    try:
        query = aggregates.parse_query(",".join(body.dimensions), str(body.level), None,
                                       request.app[BEACON].gazetteer)
    except QueryError as exc:
        raise _invalid("dimensions" if exc.field == "by" else exc.field, exc.message) from None
    reason = found.refusal(query, "json", arrangements.today())
    if reason is None and body.purpose not in found.terms.purposes:
        reason = "purpose"
    if reason is not None:
        raise await sharing.refuse(request, found.id, reason, {"special_run": True, **query.describe()})
    actor = request[CALLER].name
    async with request.app[BEACON].db.write() as conn:
        run_id = (await conn.execute(schema.special_runs.insert().values(
            arrangement_id=found.id, dimensions=list(query.by), level=query.level, purpose=body.purpose,
            status="requested", requested_by=actor, requested_at=datetime.now(UTC),
        ).returning(schema.special_runs.c.id))).scalar_one()
        await audit.append(conn, actor, "special_run.requested", str(found.id),
                           {"arrangement": found.id, "run": run_id, **query.describe()})
        row = (await conn.execute(select(schema.special_runs).where(schema.special_runs.c.id == run_id))).one()
    return web.json_response(_run_json(row), status=201)


@requires(Role.PARTNER, Role.AUDITOR)
async def get_run(request: web.Request) -> web.Response:
    """A special run's status."""
    found = await _arrangement(request)
    return web.json_response(_run_json(await _run(request, found)))


@requires()
async def decide_run(request: web.Request) -> web.Response:
    """Approve (and so produce) or reject a requested run (admin)."""
    found = await _arrangement(request)
    row = await _run(request, found)
    body = await parse(request, Decision)
    if row.status != "requested":
        raise api_error(409, "conflict", f"the run is already {row.status}")
    content = None
    if body.decision == "approve":
        min_cell = found.min_cell(request.app[BEACON].settings.min_cell)
        published = await api_stats.compute(request, StatsQuery(tuple(row.dimensions), row.level), min_cell)
        content = json.dumps(exports.as_json(published, min_cell), ensure_ascii=False)
    now = datetime.now(UTC)
    r = schema.special_runs.c
    actor = request[CALLER].name
    async with request.app[BEACON].db.write() as conn:
        changed = await conn.execute(update(schema.special_runs).where(
            r.id == row.id, r.status == "requested").values(
            status="ready" if content is not None else "rejected", decided_by=actor, decided_at=now,
            produced_at=now if content is not None else None, content=content))
        if changed.rowcount == 0:
            raise api_error(409, "conflict", "the run was decided meanwhile")
        action = "special_run.approved" if content is not None else "special_run.rejected"
        await audit.append(conn, actor, action, str(found.id), {"arrangement": found.id, "run": row.id})
        row = (await conn.execute(select(schema.special_runs).where(r.id == row.id))).one()
    return web.json_response(_run_json(row))


@requires(Role.PARTNER)
async def run_result(request: web.Request) -> web.Response:
    """The table of a ready run (the download is audited with the arrangement id); 409 before it is ready."""
    found = await _arrangement(request)
    row = await _run(request, found)
    if row.status != "ready" or row.content is None:
        raise api_error(409, "conflict", f"the run is {row.status}, not ready")
    if not await sharing.record_fetch(request, {"special_run": row.id}):  # an admin's download
        async with request.app[BEACON].db.write() as conn:
            await audit.append(conn, request[CALLER].name, "special_run.downloaded", str(found.id),
                               {"arrangement": found.id, "run": row.id})
    return web.json_response(json.loads(row.content))


def setup(app: web.Application) -> None:
    """Mount these routes."""
    app.router.add_post("/api/v1/arrangements", create_arrangement)
    app.router.add_get("/api/v1/arrangements", list_arrangements)
    app.router.add_patch("/api/v1/arrangements/{id}", end_arrangement)
    app.router.add_post("/api/v1/arrangements/{id}/runs", request_run)
    app.router.add_get("/api/v1/arrangements/{id}/runs/{run_id}", get_run)
    app.router.add_patch("/api/v1/arrangements/{id}/runs/{run_id}", decide_run)
    app.router.add_get("/api/v1/arrangements/{id}/runs/{run_id}/result", run_result)


def openapi_schemas() -> dict[str, Any]:
    """The schemas these endpoints use (merge into "components/schemas")."""
    arrangement_in = ArrangementIn.model_json_schema()
    required = [*arrangement_in["required"], "id", "created_by", "created_at", "ended_early"]
    ending = {"type": "object", "required": ["ends_on", "agreed_until", "by", "at", "reason"],
              "description": "set when an admin ended the arrangement before the end date agreed",
              "properties": {"ends_on": {"type": "string", "format": "date"},
                             "agreed_until": {"type": "string", "format": "date"}, "by": {"type": "string"},
                             "at": {"type": "string", "format": "date-time"}, "reason": {"type": "string"}}}
    properties = {**arrangement_in["properties"], "id": {"type": "integer"}, "created_by": {"type": "string"},
                  "created_at": {"type": "string"}, "ended_early": {"oneOf": [ending, {"type": "null"}]}}
    arrangement = {"type": "object", "required": required, "properties": properties}
    usage = {"type": "object", "required": ["fetches", "refused", "special_runs"],
             "properties": {k: {"type": "integer", "minimum": 0} for k in ("fetches", "refused", "special_runs")}}
    listed = {"type": "object", "required": [*required, "in_force", "usage"],
              "properties": {**properties, "in_force": {"type": "boolean"}, "usage": usage}}
    when = {"type": ["string", "null"], "format": "date-time"}
    run = {"type": "object", "required": ["id", "arrangement", "dimensions", "level", "purpose", "status",
                                          "requested_by", "requested_at", "decided_by", "decided_at", "produced_at"],
           "properties": {"id": {"type": "integer"}, "arrangement": {"type": "integer"},
                          "dimensions": {"type": "array", "items": {"type": "string"}}, "level": {"type": "integer"},
                          "purpose": {"type": "string"}, "status": {"enum": ["requested", "rejected", "ready"]},
                          "requested_by": {"type": "string"}, "requested_at": when,
                          "decided_by": {"type": ["string", "null"]}, "decided_at": when, "produced_at": when}}
    return {"ArrangementIn": arrangement_in, "Arrangement": arrangement, "ArrangementListed": listed,
            "ArrangementEnd": EndIn.model_json_schema(), "SpecialRunIn": RunIn.model_json_schema(), "SpecialRun": run,
            "SpecialRunDecision": Decision.model_json_schema()}


def openapi_paths() -> dict[str, Any]:
    """These endpoints for the OpenAPI document (merge into its "paths")."""
    def ref(name: str) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{name}"}

    def answer(schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    def errors(*codes: int) -> dict[str, Any]:
        return {str(c): answer(ref("Error"), {401: "no valid token", 403: "role may not, or outside the arrangement",
                                              404: "not found", 409: "not in a state for this",
                                              422: "invalid input"}[c]) for c in codes}

    def body(name: str) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": ref(name)}}}

    ids = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]
    run_ids = [*ids, {"name": "run_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
    listing = {"type": "object", "required": ["items"],
               "properties": {"items": {"type": "array", "items": ref("ArrangementListed")}}}
    return {
        "/api/v1/arrangements": {
            "post": {"summary": "Record a sharing arrangement (admin)", "requestBody": body("ArrangementIn"),
                     "responses": {"201": answer(ref("Arrangement"), "recorded"), **errors(401, 403, 422)}},
            "get": {"summary": "The register of arrangements with their use (auditor, admin)",
                    "responses": {"200": answer(listing, "the register"), **errors(401, 403)}}},
        "/api/v1/arrangements/{id}": {"patch": {
            "summary": "End an arrangement early (admin): its partner tokens are refused from the new end date "
                       "(today: at once); never a later end, nor once it has ended", "parameters": ids,
            "requestBody": body("ArrangementEnd"),
            "responses": {"200": answer(ref("Arrangement"), "ended early"), **errors(401, 403, 404, 409, 422)}}},
        "/api/v1/arrangements/{id}/runs": {"post": {
            "summary": "A partner asks for a special run under its arrangement", "parameters": ids,
            "requestBody": body("SpecialRunIn"),
            "responses": {"201": answer(ref("SpecialRun"), "requested"), **errors(401, 403, 404, 422)}}},
        "/api/v1/arrangements/{id}/runs/{run_id}": {
            "get": {"summary": "A special run's status", "parameters": run_ids,
                    "responses": {"200": answer(ref("SpecialRun"), "the run"), **errors(401, 403, 404)}},
            "patch": {"summary": "Approve (and produce) or reject a requested run (admin)", "parameters": run_ids,
                      "requestBody": body("SpecialRunDecision"),
                      "responses": {"200": answer(ref("SpecialRun"), "the run"), **errors(401, 403, 404, 409, 422)}}},
        "/api/v1/arrangements/{id}/runs/{run_id}/result": {"get": {
            "summary": "The suppressed table of a ready run", "parameters": run_ids,
            "responses": {"200": answer({"type": "object"}, "the table as /api/v1/stats answers it"),
                          **errors(401, 403, 404, 409)}}},
    }
