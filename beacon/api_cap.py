"""``POST /api/v1/cap``: a CAP 1.2 alert becomes a draft broadcast (or updates or withdraws one)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from beacon.context import BEACON
from beacon.http import CALLER, api_error, requires
from campaigns import cap
from domain.vocabulary import Role


@requires(Role.RESPONDER)
async def receive_cap(request: web.Request) -> web.Response:
    """Take one CAP 1.2 ``<alert>`` document; 400 with the reason when it is not one."""
    beacon = request.app[BEACON]
    try:
        alert = cap.parse(await request.read())
    except cap.CapError as exc:
        raise api_error(400, "bad_cap", str(exc)) from None
    outcome = await cap.receive(beacon.db, beacon.gazetteer, alert, request[CALLER].name)
    body = {"outcome": outcome.outcome, "broadcast_id": outcome.broadcast_id, "identifier": alert.identifier,
            "msg_type": alert.msg_type}
    return web.json_response(body, status=201 if outcome.outcome == "drafted" else 200)


def openapi_paths() -> dict[str, Any]:
    """This endpoint for the OpenAPI document."""
    result = {"type": "object", "required": ["outcome", "broadcast_id"], "properties": {
        "outcome": {"enum": ["drafted", "updated", "withdrawn", "noted", "duplicate", "ignored", "no_area",
                             "no_text", "unknown_reference"]},
        "broadcast_id": {"type": ["integer", "null"]}, "identifier": {"type": "string"},
        "msg_type": {"type": "string"}}}
    errors = {str(code): {"description": text, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}
        for code, text in ((400, "not a CAP 1.2 alert"), (401, "no valid token"), (403, "role may not"))}
    return {"/api/v1/cap": {"post": {
        "summary": "A CAP 1.2 alert: an Alert makes a draft broadcast for its areas, an Update changes the draft, "
                   "a Cancel withdraws it; nothing is sent until a responder sends the draft",
        "requestBody": {"required": True, "content": {"application/cap+xml": {"schema": {"type": "string"}},
                                                      "application/xml": {"schema": {"type": "string"}}}},
        "responses": {
            "201": {"description": "a draft was made", "content": {"application/json": {"schema": result}}},
            "200": {"description": "what the message did", "content": {"application/json": {"schema": result}}},
            **errors}}}}


def setup(app: web.Application) -> None:
    """Mount this route."""
    app.router.add_post("/api/v1/cap", receive_cap)
