"""The responder API under /api/v1: bearer tokens, roles, JSON in and out; mounts every API module."""

from __future__ import annotations

from aiohttp import web

from beacon import (
    api_arrangements,
    api_broadcasts,
    api_cap,
    api_hxl,
    api_polls,
    api_reports,
    api_sources,
    api_stats,
    api_webhooks,
)
from beacon.http import authentication
from beacon.openapi import document


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this API."""
    return web.json_response(document())


def setup(app: web.Application) -> None:
    """Mount the API on the app."""
    app.middlewares.append(authentication)
    app.router.add_get("/api/v1/openapi.json", openapi)
    api_broadcasts.setup(app)
    api_stats.setup(app)
    api_polls.setup(app)
    api_webhooks.setup(app)
    api_cap.setup(app)
    api_reports.setup(app)
    api_arrangements.setup(app)
    api_hxl.setup(app)
    api_sources.setup(app)
