"""Outreach sources under /api/v1/sources (admin): create and list them, and each one's QR code."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from beacon.context import BEACON
from beacon.http import CALLER, api_error, parse, path_id, requires
from beacon.outreach import qr_png, qr_svg, ways_in
from bot.i18n import LANGUAGES
from registry import audit, sources
from registry.sources import Source, SourceError


class SourceIn(BaseModel):
    """A new outreach source."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="what staff call it, e.g. Airport poster")
    code: str = Field(pattern=r"^[A-Za-z0-9]{2,16}$", description="letters and digits; stored upper case")
    area: str | None = Field(default=None, max_length=64, description="an area id to pre-select")
    language: str | None = Field(default=None, description="a language code to pre-select")


def _view(request: web.Request, source: Source) -> dict[str, Any]:
    return {**source.as_json(), **ways_in(request.app[BEACON], source).as_json()}


def check(request: web.Request, area: str | None, language: str | None) -> None:
    """422 for an area the gazetteer lacks or a language the bot does not speak."""
    problems = []
    if area and area not in request.app[BEACON].gazetteer.areas:
        problems.append({"field": "area", "message": f"unknown area: {area}"})
    if language and language not in LANGUAGES:
        problems.append({"field": "language", "message": f"unsupported language: {language}"})
    if problems:
        raise api_error(422, "validation_error", "invalid field(s): " + ", ".join(p["field"] for p in problems),
                        problems)


async def add(request: web.Request, name: str, code: str, area: str | None, language: str | None) -> Source:
    """Create a source as the request's caller and audit it; SourceError for a taken or malformed code."""
    beacon = request.app[BEACON]
    async with beacon.db.write() as conn:
        source = await sources.create(conn, code, name, area, language, request[CALLER].name)
        await audit.append(conn, request[CALLER].name, "source.created", str(source.id), {"code": source.code})
    return source


@requires()
async def create_source(request: web.Request) -> web.Response:
    """Create an outreach source."""
    body: SourceIn = await parse(request, SourceIn)
    check(request, body.area, body.language)
    try:
        source = await add(request, body.name, body.code, body.area, body.language)
    except SourceError as exc:
        raise api_error(422, "validation_error", f"invalid field(s): {exc.field}",
                        [{"field": exc.field, "message": exc.message}]) from None
    return web.json_response(_view(request, source), status=201)


@requires()
async def list_sources(request: web.Request) -> web.Response:
    """Every outreach source with its link, keyword and deep link."""
    async with request.app[BEACON].db.read() as conn:
        found = await sources.all_sources(conn)
    return web.json_response({"items": [_view(request, s) for s in found]})


async def _source(request: web.Request) -> Source:
    source_id = path_id(request, "source")
    async with request.app[BEACON].db.read() as conn:
        found = await sources.get(conn, source_id)
    if found is None:
        raise api_error(404, "not_found", "no such source")
    return found


@requires()
async def source_qr_svg(request: web.Request) -> web.Response:
    """The source's QR code (its short link) as SVG."""
    source = await _source(request)
    return web.Response(text=qr_svg(ways_in(request.app[BEACON], source).link), content_type="image/svg+xml")


@requires()
async def source_qr_png(request: web.Request) -> web.Response:
    """The source's QR code (its short link) as PNG."""
    source = await _source(request)
    return web.Response(body=qr_png(ways_in(request.app[BEACON], source).link), content_type="image/png")


_SOURCE = {
    "type": "object",
    "required": ["id", "code", "name", "area", "language", "created_by", "created_at", "link", "keyword",
                 "sms_number", "telegram_link"],
    "properties": {
        "id": {"type": "integer"}, "code": {"type": "string"}, "name": {"type": "string"},
        "area": {"type": ["string", "null"]}, "language": {"type": ["string", "null"]},
        "created_by": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
        "link": {"type": "string"}, "keyword": {"type": "string"}, "sms_number": {"type": ["string", "null"]},
        "telegram_link": {"type": ["string", "null"]},
    },
}


def openapi_schemas() -> dict[str, Any]:
    """Schemas for the OpenAPI document."""
    return {"SourceIn": SourceIn.model_json_schema(), "Source": _SOURCE}


def openapi_paths() -> dict[str, Any]:
    """Paths for the OpenAPI document."""
    errors = {str(code): {"description": text, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}
        for code, text in ((401, "no valid token"), (403, "role may not"), (404, "not found"), (422, "invalid input"))}
    source_id = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]
    ref = {"$ref": "#/components/schemas/Source"}
    return {
        "/api/v1/sources": {
            "post": {"summary": "Create an outreach source (admin)", "requestBody": {
                "required": True, "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/SourceIn"}}}},
                "responses": {"201": {"description": "created", "content": {"application/json": {"schema": ref}}},
                              **{k: errors[k] for k in ("401", "403", "422")}}},
            "get": {"summary": "Outreach sources with their links (admin)", "responses": {
                "200": {"description": "sources", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["items"],
                    "properties": {"items": {"type": "array", "items": ref}}}}}},
                **{k: errors[k] for k in ("401", "403")}}},
        },
        "/api/v1/sources/{id}/qr.svg": {"get": {
            "summary": "The source's QR code as SVG (admin)", "parameters": source_id,
            "responses": {"200": {"description": "SVG", "content": {"image/svg+xml": {"schema": {"type": "string"}}}},
                          **{k: errors[k] for k in ("401", "403", "404")}}}},
        "/api/v1/sources/{id}/qr.png": {"get": {
            "summary": "The source's QR code as PNG (admin)", "parameters": source_id,
            "responses": {"200": {"description": "PNG", "content": {"image/png": {
                "schema": {"type": "string", "contentEncoding": "base64"}}}},
                          **{k: errors[k] for k in ("401", "403", "404")}}}},
    }


def setup(app: web.Application) -> None:
    """Mount these routes."""
    app.router.add_post("/api/v1/sources", create_source)
    app.router.add_get("/api/v1/sources", list_sources)
    app.router.add_get("/api/v1/sources/{id}/qr.svg", source_qr_svg)
    app.router.add_get("/api/v1/sources/{id}/qr.png", source_qr_png)
