"""``/metrics`` in Prometheus's text format: behind a bearer token when BEACON_METRICS_TOKEN is set, and on
the main app, or on a listen address of its own (BEACON_METRICS_PORT) and then not on the main app at all."""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from beacon.config import Settings

log = structlog.get_logger("beacon.metrics")
Handler = Callable[[web.Request], Awaitable[web.Response]]


def handler(token: str | None) -> Handler:
    """The /metrics handler: 401 without ``Authorization: Bearer <token>`` when there is a token."""
    expected = f"Bearer {token}".encode() if token else None

    async def metrics(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").encode()
        if expected is not None and not hmac.compare_digest(given, expected):
            return web.Response(status=401, text="metrics need a bearer token",
                                headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return metrics


def route(app: web.Application, settings: Settings) -> None:
    """Serve /metrics on the main app, unless metrics are off or have a listen address of their own."""
    if settings.metrics and settings.metrics_port is None:
        app.router.add_get("/metrics", handler(settings.metrics_token))


@contextlib.asynccontextmanager
async def listener(settings: Settings) -> AsyncIterator[None]:
    """Serve /metrics on BEACON_METRICS_HOST:BEACON_METRICS_PORT while the block runs (nothing when unset)."""
    if not settings.metrics or settings.metrics_port is None:
        yield
        return
    app = web.Application()
    app.router.add_get("/metrics", handler(settings.metrics_token))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.metrics_host, settings.metrics_port).start()
        log.info("metrics.listening", host=settings.metrics_host, port=settings.metrics_port)
        yield
    finally:
        await runner.cleanup()


def serve_beside(app: web.Application, settings: Settings) -> None:
    """Run the metrics listener as long as ``app`` runs (``beacon serve``)."""
    async def metrics_listener(_app: web.Application) -> AsyncIterator[None]:
        async with listener(settings):
            yield

    app.cleanup_ctx.append(metrics_listener)
