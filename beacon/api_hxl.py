"""GET /api/v1/stats.hxl.csv: registered people by admin-1 or admin-2 area, HXL-tagged with P-codes.

The form IOM DTM and HDX exchange (see :mod:`registry.hxl`); suppressed like every other table, and
open to a partner whose arrangement allows the ``hxl`` format.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from beacon import api_stats, sharing
from beacon.context import BEACON
from beacon.http import api_error, requires
from registry import aggregates, hxl
from registry.aggregates import QueryError

DIMENSIONS = ("nationality", "gender", "age_band", "language")  # beside the area


def _query(request: web.Request) -> tuple[aggregates.StatsQuery, int]:
    """The stats query for ``level`` (admin level 1 or 2) and the further dimensions in ``by``; 422 naming the field."""
    level = request.query.get("level", "1")
    if level not in ("1", "2"):
        raise api_error(422, "validation_error", "invalid field(s): level",
                        [{"field": "level", "message": "level must be 1 or 2 (admin level)"}])
    extra = [part.strip() for part in request.query.get("by", "").split(",") if part.strip()]
    wrong = [name for name in extra if name not in DIMENSIONS]
    if wrong:
        raise api_error(422, "validation_error", "invalid field(s): by",
                        [{"field": "by", "message": "by may list: " + ", ".join(DIMENSIONS)}])
    try:
        query = aggregates.parse_query(",".join(["area", *extra]), str(int(level) - 1), None,
                                       request.app[BEACON].gazetteer)
    except QueryError as exc:
        raise api_error(422, "validation_error", f"invalid field(s): {exc.field}",
                        [{"field": exc.field, "message": exc.message}]) from None
    return query, int(level)


@requires(*api_stats.SHARED)
async def stats_hxl(request: web.Request) -> web.Response:
    """Registered people by admin area as HXL-tagged CSV with P-codes, suppressed."""
    query, admin_level = _query(request)
    min_cell = await sharing.admit(request, query, "hxl")
    published = await api_stats.compute(request, query, min_cell)
    await api_stats.record(request, {"format": "hxl", **query.describe()}, published)
    text = hxl.hxl_csv(published, request.app[BEACON].gazetteer, admin_level)
    return web.Response(text=text, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="beacon-adm{admin_level}-registered.hxl.csv"',
        "X-Beacon-Min-Cell": str(min_cell), **api_stats.headers(published)})


def openapi_paths() -> dict[str, Any]:
    """This endpoint for the OpenAPI document (merge into its "paths")."""
    errors = {str(code): {"description": text, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}
        for code, text in ((401, "no valid token"), (403, "role may not, or outside the arrangement"),
                           (422, "invalid query parameter"))}
    return {"/api/v1/stats.hxl.csv": {"get": {
        "summary": "Registered people by admin-1 or admin-2 area, HXL hashtags and P-codes (as IOM DTM and HDX)",
        "parameters": [
            {"name": "level", "in": "query", "schema": {"enum": ["1", "2"], "default": "1"},
             "description": "admin level: 1 for the top areas, 2 for the areas within them"},
            {"name": "by", "in": "query", "schema": {"type": "string"},
             "description": "further comma-separated dimensions: " + ", ".join(DIMENSIONS)}],
        "responses": {"200": {"description": "HXL-tagged CSV", "content": {"text/csv": {"schema": {"type": "string"}}}},
                      **errors}}}}


def setup(app: web.Application) -> None:
    """Mount this route."""
    app.router.add_get("/api/v1/stats.hxl.csv", stats_hxl)
