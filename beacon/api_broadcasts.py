"""Responder API: broadcasts, their tallies, need-help cases and the audit log."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from beacon.api import CALLER, BroadcastIn, api_error, check_areas, parse, requires
from bot import texts
from campaigns import broadcasts, cases
from registry import audit, schema
from registry.times import iso


def _beacon(request: web.Request):  # type: ignore[no-untyped-def]
    from beacon.app import BEACON

    return request.app[BEACON]


def _caller(request: web.Request) -> str:
    return request[CALLER].name


def _int(request: web.Request, name: str) -> int:
    try:
        return int(request.match_info[name])
    except ValueError:
        raise api_error(404, "not_found", f"no such {name}") from None


@requires("responder")
async def create_broadcast(request: web.Request) -> web.Response:
    """Store a broadcast; it is fanned out now or at ``send_at``."""
    beacon = _beacon(request)
    body: BroadcastIn = await parse(request, BroadcastIn)
    check_areas(request, body)
    broadcast_id = await broadcasts.create(
        beacon.db, texts_by_language=body.text, audience=broadcasts.Audience.from_json(body.audience.model_dump()),
        check_in=body.check_in, send_at=body.send_at, remind_after_minutes=body.remind_after_minutes,
        created_by=_caller(request))
    beacon.runner.wake()
    async with beacon.db.read() as conn:
        found = await broadcasts.summary(conn, broadcast_id)
    return web.json_response(found, status=201)


@requires("responder")
async def get_broadcast(request: web.Request) -> web.Response:
    """A broadcast with its tallies."""
    async with _beacon(request).db.read() as conn:
        found = await broadcasts.summary(conn, _int(request, "id"))
    if found is None:
        raise api_error(404, "not_found", "no such broadcast")
    return web.json_response(found)


@requires("responder")
async def list_broadcasts(request: web.Request) -> web.Response:
    """The latest broadcasts with their tallies."""
    b = schema.broadcasts.c
    async with _beacon(request).db.read() as conn:
        ids = (await conn.execute(select(b.id).order_by(b.id.desc()).limit(50))).scalars().all()
        items = [await broadcasts.summary(conn, int(i)) for i in ids]
    return web.json_response({"items": items})


@requires("responder")
async def cancel_broadcast(request: web.Request) -> web.Response:
    """Stop what has not left yet."""
    beacon = _beacon(request)
    broadcast_id = _int(request, "id")
    if await broadcasts.cancel(beacon.db, broadcast_id, _caller(request)) is None:
        raise api_error(404, "not_found", "no such broadcast")
    async with beacon.db.read() as conn:
        return web.json_response(await broadcasts.summary(conn, broadcast_id))


@requires("responder")
async def list_cases(request: web.Request) -> web.Response:
    """Need-help cases, filtered by status, area (with the areas below it) and category; audited."""
    beacon = _beacon(request)
    status = request.query.get("status") or None
    if status and status not in cases.STATUSES:
        raise api_error(422, "validation_error", "invalid field(s): status",
                        [{"field": "status", "message": f"must be one of {', '.join(cases.STATUSES)}"}])
    area = request.query.get("area") or None
    if area and area not in beacon.gazetteer.areas:
        raise api_error(422, "validation_error", "invalid field(s): area",
                        [{"field": "area", "message": "unknown area"}])
    category = request.query.get("category") or None
    async with beacon.db.write() as conn:
        rows = await cases.find(conn, status=status, category=category,
                                area_ids=beacon.gazetteer.descendants([area]) if area else None)
        items = [cases.view(beacon.keys.ring, row) for row in rows]
        await audit.append(conn, _caller(request), "cases.read", None, {"cases": [r.id for r in rows]})
    return web.json_response({"items": items})


class CaseChange(BaseModel):
    """A responder's change to a case."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["open", "in_progress", "closed"] | None = None
    assignee: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=2000)


NOTIFY = {"in_progress": texts.CASE_PICKED_UP, "closed": texts.CASE_CLOSED}


async def apply_case_change(beacon: Any, case_id: int, by: str, body: CaseChange) -> dict[str, Any]:
    """Assign, annotate or move a case, audited; the registrant is told when it is picked up or closed.

    Raises :class:`campaigns.cases.CaseError` for an unknown case or a change that is not allowed."""
    async with beacon.db.write() as conn:
        row, moved = await cases.change(conn, beacon.keys.ring, case_id, by=by,
                                        status=body.status, assignee=body.assignee, note=body.note)
        if moved in NOTIFY:
            await beacon.service.tell(conn, row.registrant_id, NOTIFY[moved])
        await audit.append(conn, by, "case.updated", str(case_id),
                           {"status": moved, "assigned": body.assignee is not None, "note": bool(body.note)})
        view = cases.view(beacon.keys.ring, row)
    beacon.sender.wake()
    return view


@requires("responder")
async def change_case(request: web.Request) -> web.Response:
    """Assign, annotate or move a case; the registrant is told when it is picked up or closed."""
    body: CaseChange = await parse(request, CaseChange)
    try:
        view = await apply_case_change(_beacon(request), _int(request, "id"), _caller(request), body)
    except cases.CaseError as exc:
        status = 404 if "no such" in str(exc) else 409
        raise api_error(status, "not_found" if status == 404 else "conflict", str(exc)) from None
    return web.json_response(view)


class AuditQuery(BaseModel):
    """The audit log's filters."""

    model_config = ConfigDict(extra="forbid")
    actor: str | None = None
    action: str | None = None
    subject: str | None = None
    after: int | None = Field(default=None, ge=0)
    before: int | None = Field(default=None, ge=1)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    limit: int = Field(default=200, ge=1, le=1000)


@requires("auditor")
async def list_audit(request: web.Request) -> web.Response:
    """Audit entries, newest first; filters: actor, action, subject, after/before (seq), since/until (time)."""
    try:
        query = AuditQuery.model_validate({k: v for k, v in request.query.items() if v != ""})
    except ValidationError as exc:
        detail = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        raise api_error(422, "validation_error", f"invalid field(s): {', '.join(d['field'] for d in detail)}",
                        detail) from None
    async with _beacon(request).db.read() as conn:
        rows = await audit.entries(conn, **query.model_dump())
    items: list[dict[str, Any]] = [
        {"seq": r.seq, "at": iso(r.at), "actor": r.actor, "action": r.action, "subject": r.subject,
         "detail": r.detail, "hash": r.hash} for r in rows]
    return web.json_response({"items": items})


def setup(app: web.Application) -> None:
    """Mount these routes."""
    app.router.add_post("/api/v1/broadcasts", create_broadcast)
    app.router.add_get("/api/v1/broadcasts", list_broadcasts)
    app.router.add_get("/api/v1/broadcasts/{id}", get_broadcast)
    app.router.add_post("/api/v1/broadcasts/{id}/cancel", cancel_broadcast)
    app.router.add_get("/api/v1/cases", list_cases)
    app.router.add_patch("/api/v1/cases/{id}", change_case)
    app.router.add_get("/api/v1/audit", list_audit)
