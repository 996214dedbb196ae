"""Outbound webhook subscriptions under /api/v1/webhooks (admin only), and their delivery log."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from beacon.context import BEACON
from beacon.http import CALLER, api_error, parse, path_id, requires
from campaigns import webhooks
from registry import audit, schema


class WebhookIn(BaseModel):
    """A subscription: where to post, which events, and whether case events carry the case's personal data."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2000)
    events: list[str] = Field(min_length=1)
    include_personal_data: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in webhooks.EVENTS]
        if unknown:
            raise ValueError(f"unknown event(s): {', '.join(unknown)}; known: {', '.join(webhooks.EVENTS)}")
        return sorted(set(value))

    @model_validator(mode="after")
    def _personal(self) -> WebhookIn:
        if self.include_personal_data and any(e not in webhooks.CASE_EVENTS for e in self.events):
            raise ValueError("include_personal_data is only for subscriptions to case events")
        return self


@requires()
async def create_webhook(request: web.Request) -> web.Response:
    """Subscribe a URL; the signing secret is in this answer only."""
    beacon = request.app[BEACON]
    body: WebhookIn = await parse(request, WebhookIn)
    by = request[CALLER].name
    async with beacon.db.write() as conn:
        row, secret = await webhooks.subscribe(conn, beacon.keys.ring, url=body.url, events=body.events,
                                               include_personal_data=body.include_personal_data, by=by)
        await audit.append(conn, by, "webhook.created", str(row.id),
                           {"events": body.events, "personal_data": body.include_personal_data})
    return web.json_response({**webhooks.view(row), "secret": secret}, status=201)


@requires()
async def list_webhooks(request: web.Request) -> web.Response:
    """The subscriptions in force (without their secrets)."""
    async with request.app[BEACON].db.read() as conn:
        rows = await webhooks.active(conn)
    return web.json_response({"items": [webhooks.view(r) for r in rows]})


@requires()
async def delete_webhook(request: web.Request) -> web.Response:
    """End a subscription; its delivery log stays."""
    webhook_id = path_id(request, "webhook")
    async with request.app[BEACON].db.write() as conn:
        if not await webhooks.unsubscribe(conn, webhook_id):
            raise api_error(404, "not_found", "no such webhook")
        await audit.append(conn, request[CALLER].name, "webhook.deleted", str(webhook_id))
    return web.Response(status=204)


@requires()
async def list_deliveries(request: web.Request) -> web.Response:
    """A subscription's latest deliveries: event, status code, attempts and times (never the payload)."""
    webhook_id = path_id(request, "webhook")
    async with request.app[BEACON].db.read() as conn:
        found = (await conn.execute(schema.webhooks.select().where(schema.webhooks.c.id == webhook_id))).first()
        if found is None:
            raise api_error(404, "not_found", "no such webhook")
        items = await webhooks.deliveries(conn, webhook_id)
    return web.json_response({"items": items})


def _case(personal: bool) -> dict[str, Any]:
    fields = {"id": {"type": "integer"}, "status": {"type": "string"}, "area": {"type": ["string", "null"]},
              "category": {"type": ["string", "null"]}, "assignee": {"type": ["string", "null"]},
              "created_at": {"type": "string", "format": "date-time"},
              "updated_at": {"type": "string", "format": "date-time"}}
    if personal:
        fields.update({"registrant_id": {"type": "integer"}, "broadcast_id": {"type": ["integer", "null"]},
                       "details": {"type": ["string", "null"]}, "notes": {"type": "array"}})
    return {"type": "object", "required": ["id", "status"], "properties": fields}


def _envelope(event: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["id", "event", "created_at", "data"], "properties": {
        "id": {"type": "string", "description": "unique per notification: the receiver's idempotency key"},
        "event": {"const": event}, "created_at": {"type": "string", "format": "date-time"}, "data": data}}


def openapi_webhooks() -> dict[str, Any]:
    """The OpenAPI 3.1 ``webhooks`` object: what Beacon posts to subscribers, per event."""
    case_data = {"type": "object", "required": ["case"], "properties": {
        "case": {"oneOf": [_case(False), _case(True)],
                 "description": "ids, status, area and category; the fields the responder API shows only when "
                                "the subscription has include_personal_data"}}}
    counts = {"type": "object", "properties": {k: {"type": "integer"} for k in
                                               ("recipients", "safe", "need_help", "no_reply")}}
    data = {
        "case.opened": case_data, "case.assigned": case_data, "case.closed": case_data,
        "checkins.changed": {"type": "object", "required": ["broadcast_id", "counts"],
                             "properties": {"broadcast_id": {"type": "integer"}, "counts": counts}},
        "broadcast.finished": {"type": "object", "required": ["broadcast"], "properties": {"broadcast": {
            "type": "object", "properties": {"id": {"type": "integer"}, "status": {"type": "string"},
                                             "recipients": {"type": "integer"},
                                             "finished_at": {"type": "string", "format": "date-time"}}}}},
    }
    headers: dict[str, dict[str, Any]] = {
        "X-Beacon-Signature": {"description": "t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<body>' keyed with the "
                                              "subscription's secret>", "schema": {"type": "string"}},
        "X-Beacon-Event": {"schema": {"type": "string"}}, "X-Beacon-Delivery": {"schema": {"type": "string"}}}
    return {event: {"post": {
        "summary": f"Beacon notifies a subscriber of {event}",
        "parameters": [{"name": name, "in": "header", "required": True, **spec} for name, spec in headers.items()],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _envelope(event, body)}}},
        "responses": {"2XX": {"description": "received; anything else is retried with exponential backoff"}}}}
        for event, body in data.items()}


def openapi_paths() -> dict[str, Any]:
    """These endpoints for the OpenAPI document."""
    ident = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]
    body = {"type": "object", "required": ["url", "events"], "additionalProperties": False, "properties": {
        "url": {"type": "string", "maxLength": 2000},
        "events": {"type": "array", "minItems": 1, "items": {"enum": list(webhooks.EVENTS)}},
        "include_personal_data": {"type": "boolean"}}}
    hook = {"type": "object", "required": ["id", "url", "events", "include_personal_data"], "properties": {
        "id": {"type": "integer"}, "url": {"type": "string"}, "events": {"type": "array"},
        "include_personal_data": {"type": "boolean"}, "created_by": {"type": "string"},
        "created_at": {"type": "string"}, "secret": {"type": "string", "description": "in the creation answer only"}}}

    def errors(*codes: int) -> dict[str, Any]:
        text = {401: "no valid token", 403: "role may not", 404: "not found", 422: "invalid input"}
        return {str(c): {"description": text[c], "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"}}}} for c in codes}

    def ok(schema_: dict[str, Any], description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": schema_}}}

    items = {"type": "object", "required": ["items"], "properties": {"items": {"type": "array"}}}
    return {
        "/api/v1/webhooks": {
            "post": {"summary": "Subscribe a URL to events (admin)", "requestBody": {"required": True, "content": {
                "application/json": {"schema": body}}},
                "responses": {"201": ok(hook, "the subscription, with its secret"), **errors(401, 403, 422)}},
            "get": {"summary": "Webhook subscriptions (admin)",
                    "responses": {"200": ok(items, "subscriptions"), **errors(401, 403)}}},
        "/api/v1/webhooks/{id}": {"delete": {
            "summary": "End a subscription (admin)", "parameters": ident,
            "responses": {"204": {"description": "ended"}, **errors(401, 403, 404)}}},
        "/api/v1/webhooks/{id}/deliveries": {"get": {
            "summary": "A subscription's delivery log: event, status code, attempts, times (admin)",
            "parameters": ident, "responses": {"200": ok(items, "deliveries"), **errors(401, 403, 404)}}},
    }


def setup(app: web.Application) -> None:
    """Mount these routes."""
    app.router.add_post("/api/v1/webhooks", create_webhook)
    app.router.add_get("/api/v1/webhooks", list_webhooks)
    app.router.add_delete("/api/v1/webhooks/{id}", delete_webhook)
    app.router.add_get("/api/v1/webhooks/{id}/deliveries", list_deliveries)
