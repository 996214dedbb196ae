"""The sharing arrangements page: the register with each arrangement's use, the form to record one and the
button to end one early (admin)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from beacon.api_arrangements import ArrangementIn, end_early, terms_of
from beacon.console.web import SESSION, page, path_record_id, render, translate
from beacon.context import BEACON
from domain.vocabulary import Role
from registry import aggregates, arrangements, audit
from registry.arrangements import FORMATS


async def _show(request: web.Request, error: str | None = None, form: dict[str, Any] | None = None,
                status: int = 200, end_error: str | None = None) -> web.Response:
    today = arrangements.today()
    async with request.app[BEACON].db.write() as conn:
        found = await arrangements.register(conn)
        await audit.append(conn, request[SESSION].actor, "arrangement.listed", None, {"count": len(found)})
    return render(request, "arrangements.html", {
        "rows": [(a, a.in_force(today), usage) for a, usage in found], "error": error, "form": form or {},
        "today": today, "end_error": end_error,
        "dimensions": aggregates.DIMENSIONS, "formats": FORMATS,
        "may_record": request[SESSION].role == Role.ADMIN}, status=status)


@page("arrangements")
async def arrangements_page(request: web.Request) -> web.StreamResponse:
    """The register of arrangements (auditor, admin)."""
    return await _show(request)


@page("arrangements")
async def record_arrangement(request: web.Request) -> web.StreamResponse:
    """POST: record an arrangement (admin only; auditors read)."""
    if request[SESSION].role != Role.ADMIN:
        raise web.HTTPForbidden()
    form = await request.post()
    values: dict[str, Any] = {name: str(form.get(name) or "").strip() for name in (
        "partner", "contact", "area_level", "min_cell", "frequency", "starts_on", "ends_on", "legal_basis")}
    values["purposes"] = [p.strip() for p in str(form.get("purposes") or "").split(",") if p.strip()]
    values["dimensions"] = [str(d) for d in form.getall("dimensions", [])]
    values["formats"] = [str(f) for f in form.getall("formats", [])]
    try:
        body = ArrangementIn.model_validate(values)
    except ValidationError as exc:
        fields = ", ".join(sorted({str(e["loc"][0]) if e["loc"] else "dates" for e in exc.errors()}))
        return await _show(request, translate(request, "Check these fields: {fields}", fields=fields), values, 422)
    terms = terms_of(request.app[BEACON], body)
    if isinstance(terms, tuple):
        return await _show(request, translate(request, "Check these fields: {fields}", fields=terms[0]), values, 422)
    async with request.app[BEACON].db.write() as conn:
        await arrangements.record(conn, terms, request[SESSION].actor)
    raise web.HTTPSeeOther("/console/arrangements")


@page("arrangements")
async def end_arrangement(request: web.Request) -> web.StreamResponse:
    """POST: end an arrangement now, with a reason (admin only): its partner tokens are refused at once."""
    if request[SESSION].role != Role.ADMIN:
        raise web.HTTPForbidden()
    arrangement_id = path_record_id(request)
    reason = str((await request.post()).get("reason") or "").strip()
    if not reason or len(reason) > 500:
        return await _show(request, status=422,
                           end_error=translate(request, "Give a reason for ending the arrangement."))
    ended = await end_early(request.app[BEACON], arrangement_id, None, reason, request[SESSION].actor)
    if isinstance(ended, tuple):
        if ended[0] == 404:
            raise web.HTTPNotFound()
        return await _show(request, status=409, end_error=translate(request, "This arrangement has already ended."))
    raise web.HTTPSeeOther("/console/arrangements")


def add_routes(app: web.Application) -> None:
    """Mount the arrangements page."""
    app.router.add_get("/console/arrangements", arrangements_page)
    app.router.add_post("/console/arrangements", record_arrangement)
    app.router.add_post("/console/arrangements/{id}/end", end_arrangement)
