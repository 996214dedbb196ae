"""The public aggregates at /public, /public.json and /public.csv (off unless BEACON_PUBLIC_STATS=on).

No login: only the coarsest table (registered people by top-level area), protected at the higher
public minimum cell, from the copy :func:`refresh` keeps on a schedule, never counted per request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiohttp import web

from beacon.api_stats import TEMPLATES, svg_map
from beacon.console.i18n import CONSOLE_LANGUAGES, gettext_callables, is_rtl
from beacon.console.web import language_of
from beacon.context import BEACON, Beacon
from bot.texts import N_
from registry import exports
from registry.aggregates import UNKNOWN
from registry.publication import Published

log = structlog.get_logger("beacon.public")
TITLE = "Registered people by area"
MAP_CAPTION = N_("Map of registered people by area")
NOT_GIVEN = N_("Not given")  # the area of people who gave none
CACHE = "public, max-age=300"


async def refresh(beacon: Beacon) -> None:
    """Compute the public table again (what the schedule runs)."""
    settings = beacon.settings
    await beacon.public.refresh(beacon.db, beacon.gazetteer, beacon.tables, settings.public_min_cell)


async def keep_fresh(beacon: Beacon) -> None:
    """Refresh the public table at start and then every BEACON_PUBLIC_REFRESH_MINUTES until stopped."""
    while not beacon.stop.is_set():
        try:
            await refresh(beacon)
        except Exception:  # noqa: BLE001 - the last table stays published; tried again next time
            log.exception("public.refresh_failed")
        try:
            await asyncio.wait_for(beacon.stop.wait(), timeout=beacon.settings.public_refresh_minutes * 60)
        except TimeoutError:
            pass


def method(beacon: Beacon) -> str:
    """The note on method every public form carries."""
    settings = beacon.settings
    return (f"Counts of people who registered with {settings.operator_name} through Beacon, consented and gave "
            f"an area, by top-level area. People who asked for their data to be erased are not counted. "
            f"{exports.suppression_rule(settings.public_min_cell)} The table is computed again every "
            f"{settings.public_refresh_minutes} minutes; 'data as of' is when the registry last changed.")


def _current(request: web.Request) -> Published:
    found = request.app[BEACON].public.current
    if found is None:  # the first refresh has not finished yet
        raise web.HTTPServiceUnavailable(text="the public table is being prepared", headers={"Retry-After": "30"})
    return found


def _rows(beacon: Beacon, published: Published, language: str = "en", unknown: str = "Unknown") -> list[dict[str, Any]]:
    found = []
    for entry in published.table.cells:
        area = beacon.gazetteer.areas.get(entry.key[0])
        found.append({"area": entry.key[0], "name": area.name(language) if area else
                      (unknown if entry.key[0] == UNKNOWN else entry.key[0]),
                      "pcode": area.pcode if area else None, "count": entry.count, "suppressed": entry.suppressed})
    return found


async def public_json(request: web.Request) -> web.Response:
    """The public table as JSON."""
    beacon = request.app[BEACON]
    published = _current(request)
    table = published.table
    return web.json_response({
        "title": TITLE, "by": ["area"], "min_cell": beacon.settings.public_min_cell,
        "cells": _rows(beacon, published), "total": {"count": table.total.count, "suppressed": table.total.suppressed},
        "generated_at": exports.stamp(published.generated_at), "data_as_of": exports.freshness(published.data_as_of),
        "method": method(beacon)}, headers={"Cache-Control": CACHE})


async def public_csv(request: web.Request) -> web.Response:
    """The public table as CSV (metadata lines, HXL hashtags, P-codes)."""
    beacon = request.app[BEACON]
    text = exports.csv_text(_current(request), beacon.gazetteer, beacon.settings.public_min_cell)
    return web.Response(text=text, content_type="text/csv", charset="utf-8", headers={
        "Cache-Control": CACHE, "Content-Disposition": 'attachment; filename="beacon-public-by-area.csv"'})


async def public_page(request: web.Request) -> web.Response:
    """The public page: a map, the table, the date the data is as of and the method, in the reader's language
    (``?lang=``, else the browser's; the console's languages)."""
    beacon = request.app[BEACON]
    published = _current(request)
    language = language_of(request)
    gettext = gettext_callables(language)[0]
    settings = beacon.settings
    page = TEMPLATES.get_template("public.html").render(
        _=gettext, lang=language, dir="rtl" if is_rtl(language) else "ltr", languages=CONSOLE_LANGUAGES,
        operator=settings.operator_name, rows=_rows(beacon, published, language, gettext(NOT_GIVEN)),
        total=published.table.total.count, data_as_of=exports.freshness(published.data_as_of),
        produced_at=exports.stamp(published.generated_at), min_cell=settings.public_min_cell,
        minutes=settings.public_refresh_minutes,
        map=svg_map(beacon.gazetteer, published.table, language=language, withheld=gettext("withheld"),
                    caption=gettext(MAP_CAPTION)))
    return web.Response(text=page, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": CACHE, "Vary": "Accept-Language"})


def setup(app: web.Application) -> None:
    """Mount the public routes (only called when BEACON_PUBLIC_STATS=on: otherwise they are 404)."""
    app.router.add_get("/public", public_page)
    app.router.add_get("/public.json", public_json)
    app.router.add_get("/public.csv", public_csv)
