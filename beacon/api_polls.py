"""A poll's answers as suppressed aggregates: ``GET /api/v1/stats/polls/{id}?by=area``.

The same publication path, disclosure control and audit as ``/api/v1/stats``: the poll's answer is one
more dimension of the table, counted over the broadcast's recipients (``no_reply`` for those who did not
answer), so a small group's answers are withheld like any other small count.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from beacon.api_stats import READERS, compute, record
from beacon.context import BEACON
from beacon.http import api_error, path_id, requires
from registry import aggregates, exports, schema
from registry.aggregates import QueryError


@requires(*READERS)
async def poll_stats(request: web.Request) -> web.Response:
    """A poll's answers by area, nationality, ...: small cells suppressed."""
    beacon = request.app[BEACON]
    broadcast_id = path_id(request, "poll")
    b = schema.broadcasts.c
    async with beacon.db.read() as conn:
        poll = (await conn.execute(select(b.poll).where(b.id == broadcast_id))).first()
    if poll is None or not poll.poll:
        raise api_error(404, "not_found", "no such poll")
    try:
        query = aggregates.poll_query(request.query.get("by"), request.query.get("level"), broadcast_id,
                                      beacon.gazetteer)
    except QueryError as exc:
        raise api_error(422, "validation_error", f"invalid field(s): {exc.field}",
                        [{"field": exc.field, "message": exc.message}]) from None
    published = await compute(request, query)
    await record(request, query.describe())
    return web.json_response(exports.as_json(published, beacon.settings.min_cell))


def openapi_paths() -> dict[str, Any]:
    """This endpoint for the OpenAPI document."""
    return {"/api/v1/stats/polls/{id}": {"get": {
        "summary": "A poll's answers (option numbers, or no_reply) by the dimensions in by, small counts suppressed",
        "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
            {"name": "by", "in": "query", "schema": {"type": "string", "default": "area"},
             "description": "comma-separated dimensions besides the answer: area, nationality, gender, age_band, "
                            "language, channel"},
            {"name": "level", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}}],
        "responses": {
            "200": {"description": "the table", "content": {"application/json": {"schema": {"type": "object"}}}},
            **{str(code): {"description": text, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}
               for code, text in ((401, "no valid token"), (403, "role may not"), (404, "not found"),
                                  (422, "invalid query parameter"))}}}}}


def setup(app: web.Application) -> None:
    """Mount this route."""
    app.router.add_get("/api/v1/stats/polls/{id}", poll_stats)
