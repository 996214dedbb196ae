"""The Aggregates page: suppressed breakdowns of the registered, check-in results, and the exports."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from beacon import api_reports, api_stats
from beacon.console.web import SESSION, area_label, language_of, page, render, translate
from beacon.context import BEACON
from beacon.http import may
from bot.countries import country_name
from bot.i18n import LANGUAGES
from campaigns import queries, reports
from domain.vocabulary import CheckInStatus
from registry import aggregates, publication
from registry.times import iso

STATS_DIMENSIONS = ("area", "nationality", "gender", "age_band", "language", "channel", "status", "source")
CHECK_INS = 20
RUNS = 10


@page("aggregates")
async def aggregates_page(request: web.Request) -> web.StreamResponse:
    """A suppressed table of the chosen breakdown, with the exports."""
    beacon = request.app[BEACON]
    dims = [d for d in request.query.getall("by", []) if d in STATS_DIMENSIONS] or ["area"]
    broadcast = request.query.get("broadcast") or ""
    if "status" in dims and not broadcast.isdigit():
        dims.remove("status")
        dims = dims or ["area"]
    level = request.query.get("level", "0")
    try:
        query = aggregates.parse_query(",".join(dims), level, broadcast if "status" in dims else None,
                                       beacon.gazetteer, ("area",))
        published = await publication.build(beacon.db, beacon.gazetteer, beacon.tables, query,
                                            beacon.settings.min_cell)
        problem = None
    except aggregates.QueryError as exc:
        published, problem = None, exc.message
    rows: list[dict[str, Any]] = []
    if published is not None:
        for entry in published.table.cells:
            rows.append({"labels": [label(request, name, value) for name, value in zip(dims, entry.key, strict=True)],
                         "count": entry.count})
        await api_stats.record(request, query.describe())
    async with beacon.db.read() as conn:
        checkins = await queries.latest_check_ins(conn, CHECK_INS)
    query_string = f"by={','.join(dims)}&level={level}" + (f"&broadcast={broadcast}" if "status" in dims else "")
    runs: list[dict[str, Any]] = []
    if may(request[SESSION].role, api_reports.READERS):
        async with beacon.db.read() as conn:
            runs = [reports.run_view(row) for row in await reports.list_runs(conn, status="done", limit=RUNS)]
    return render(request, "aggregates.html", {
        "dims": dims, "all_dims": STATS_DIMENSIONS, "rows": rows, "problem": problem,
        "total": published.table.total.count if published else None, "min_cell": beacon.settings.min_cell,
        "checkins": [(broadcast_id, iso(created_at)) for broadcast_id, created_at in checkins],
        "broadcast": broadcast, "level": level, "levels": range(aggregates.max_level(beacon.gazetteer) + 1),
        "query_string": query_string, "runs": runs,
    })


def label(request: web.Request, name: str, value: str) -> str:
    """A dimension value as people read it."""
    if name == "area":
        return area_label(request, value)
    if value == aggregates.UNKNOWN:
        return translate(request, "Not given")
    if name == "nationality":
        return country_name(value, language_of(request))
    if name == "language":
        return LANGUAGES.get(value, value)
    names: dict[str, str] = {CheckInStatus.SAFE: translate(request, "Safe"),
                             CheckInStatus.NEED_HELP: translate(request, "Needs help"),
                             CheckInStatus.NO_REPLY: translate(request, "No reply")}
    return names.get(value, value)


def add_routes(app: web.Application) -> None:
    """Mount the Aggregates page and, under the console's session, the API's exports."""
    app.router.add_get("/console/aggregates", aggregates_page)
    # The API's exports, under the console's session (same roles, same suppression, same audit).
    app.router.add_get("/console/aggregates/stats.csv", api_stats.stats_csv)
    app.router.add_get("/console/aggregates/stats.geojson", api_stats.stats_geojson)
    app.router.add_get("/console/aggregates/situation", api_stats.situation_report)
    app.router.add_get("/console/aggregates/runs/{id}/content", api_reports.run_content)
