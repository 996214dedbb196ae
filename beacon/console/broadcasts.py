"""Broadcasts: the latest with their tallies, one with live tallies, and stopping what has not left yet."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from beacon.console.web import SESSION, area_label, page, path_record_id, render, translate
from beacon.context import BEACON
from bot.i18n import LANGUAGES, RTL_LANGUAGES
from campaigns import broadcasts, queries

LATEST = 50


@page("broadcasts")
async def broadcast_list(request: web.Request) -> web.StreamResponse:
    """The latest broadcasts."""
    async with request.app[BEACON].db.read() as conn:
        items = await queries.latest_broadcasts(conn, LATEST)
    return render(request, "broadcasts.html", {"items": items})


async def _summary(request: web.Request) -> dict[str, Any]:
    async with request.app[BEACON].db.read() as conn:
        found = await broadcasts.summary(conn, path_record_id(request))
    if found is None:
        raise web.HTTPNotFound()
    return found


@page("broadcasts")
async def broadcast_page(request: web.Request) -> web.StreamResponse:
    """One broadcast with live tallies."""
    found = await _summary(request)
    texts = [{"code": code, "name": LANGUAGES.get(code, code), "rtl": code in RTL_LANGUAGES, "text": text}
             for code, text in found["texts"].items()]
    nothing_left = translate(request, "Nothing was left to stop: every message had already gone.") \
        if request.query.get("nothing_left") else None
    return render(request, "broadcast.html", {"b": found, "texts": texts, "nothing_left": nothing_left,
                                              "area_names": [area_label(request, a) for a in found["audience"].get(
                                                  "areas", [])]})


@page("broadcasts")
async def broadcast_tallies(request: web.Request) -> web.StreamResponse:
    """The tallies as JSON, for the page to refresh itself."""
    found = await _summary(request)
    return web.json_response({"status": found["status"], "counts": found["counts"]})


@page("broadcasts")
async def broadcast_cancel(request: web.Request) -> web.StreamResponse:
    """POST: stop what has not left yet."""
    broadcast_id = path_record_id(request)
    before = await _summary(request)
    withdrawn = await broadcasts.cancel(request.app[BEACON].db, broadcast_id, request[SESSION].actor)
    if withdrawn is None:
        raise web.HTTPNotFound()
    stopped = before["status"] in ("scheduled", "sending") or withdrawn
    raise web.HTTPSeeOther(f"/console/broadcasts/{broadcast_id}" + ("" if stopped else "?nothing_left=1"))


def add_routes(app: web.Application) -> None:
    """Mount the broadcast pages (sending one is the compose pages' part)."""
    app.router.add_get("/console/broadcasts", broadcast_list)
    app.router.add_get("/console/broadcasts/{id}", broadcast_page)
    app.router.add_get("/console/broadcasts/{id}/tallies", broadcast_tallies)
    app.router.add_post("/console/broadcasts/{id}/cancel", broadcast_cancel)
