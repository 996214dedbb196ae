"""The aiohttp application: webhooks, simulator, health, metrics and the responder API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import structlog
from aiohttp import web
from prometheus_client import Counter

from beacon import api, api_voice, console, drain, join, join_invited, metrics, public, wakeups
from beacon.config import Settings
from beacon.context import BEACON, Beacon, open_beacon
from campaigns import reports, upkeep
from campaigns.cap_feed import CapFeed
from channels.base import Provider, WebhookCall, WebhookRejected
from channels.twilio import TwilioChannel
from channels.voice import VOICE_PATH
from domain.vocabulary import ProviderName
from registry.keys import CHECK_SECONDS

log = structlog.get_logger("beacon.app")
REJECTED = Counter("beacon_webhook_rejected_total", "Webhook calls refused", ["provider", "status"])
STATIC = Path(__file__).parent / "static"


async def follow_keys(beacon: Beacon) -> None:
    """Pick up a key rotation within a second: ``keys reencrypt`` waits that long before it re-seals,
    and a process still on the old ring could neither open new data nor stop sealing under the old key."""
    while not beacon.stop.is_set():
        try:
            await beacon.keys.check(beacon.db)
        except Exception:  # noqa: BLE001 - keep the keys we have
            log.exception("keys.check_failed")
        try:
            await asyncio.wait_for(beacon.stop.wait(), timeout=CHECK_SECONDS)
        except TimeoutError:
            pass


async def _background(beacon: Beacon, worker: bool) -> list[asyncio.Task[None]]:
    shared = not beacon.db.sqlite  # other processes share the database: wake theirs, or be woken by them
    announcer = wakeups.Announcer(beacon.db) if shared and not worker else None
    if announcer is not None and not beacon.settings.web_bot:  # store only: the workers run the bot
        beacon.intake.leave_to_workers(lambda: announcer.announce(wakeups.INBOUND))
    tasks = [asyncio.create_task(follow_keys(beacon)), asyncio.create_task(beacon.intake.replay(beacon.stop))]
    if worker or beacon.settings.web_bot:  # else the workers sweep: web processes would only compete
        tasks.append(asyncio.create_task(drain.sweep(beacon.service, beacon.stop)))
    if beacon.settings.public_stats:  # in the process that serves /public, worker or not
        tasks.append(asyncio.create_task(public.keep_fresh(beacon)))
    if worker:
        tasks.append(asyncio.create_task(beacon.sender.run(beacon.stop)))
        tasks.append(asyncio.create_task(beacon.runner.run(beacon.stop)))
        tasks.append(asyncio.create_task(beacon.webhooks.run(beacon.stop)))
        beacon.runner.start_schedule(upkeep_jobs(beacon))
    if shared and worker:
        tasks.append(asyncio.create_task(
            wakeups.listen(beacon.settings.database_url, beacon.sender, beacon.runner, beacon.stop)))
    if announcer is not None:
        announcer.attach(beacon.sender, beacon.runner)
        tasks.append(asyncio.create_task(announcer.run(beacon.stop)))
    return tasks


def upkeep_jobs(beacon: Beacon) -> list[tuple[Callable[[], Awaitable[None]], int]]:
    """Retention once a day, confirmation nudges every hour and due report schedules every minute,
    as (job, seconds) for the scheduler."""
    settings = beacon.settings

    async def retention() -> None:
        await upkeep.run_retention(beacon.db, beacon.keys, settings.retention_policy(), settings.default_language)
        beacon.sender.wake()

    async def nudges() -> None:
        if await upkeep.send_nudges(beacon.db, beacon.keys, settings.confirm_after_days, settings.default_language):
            beacon.sender.wake()

    async def reports_due() -> None:  # next_run_at in the database is the clock; this only looks
        await reports.run_due(beacon.db, beacon.gazetteer, beacon.tables, settings.min_cell)

    jobs: list[tuple[Callable[[], Awaitable[None]], int]] = [
        (retention, 24 * 3600), (nudges, 3600), (reports_due, reports.CHECK_SECONDS)]
    if settings.cap_feed_url:
        feed = CapFeed(beacon.db, beacon.gazetteer, settings.cap_feed_url)

        async def cap_alerts() -> None:  # drafts only: a responder sends them
            await feed.poll()

        jobs.append((cap_alerts, settings.cap_poll_minutes * 60))
    return jobs


def create_app(settings: Settings, *, worker: bool = True) -> web.Application:
    """The web application; with ``worker`` it also runs the sender in the same process."""
    app = web.Application(client_max_size=1024 * 1024)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        async with open_beacon(settings) as beacon:
            app[BEACON] = beacon
            tasks = await _background(beacon, worker)
            yield
            beacon.stop.set()
            beacon.runner.stop_schedule()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/healthz", healthz)
    metrics.route(app, settings)
    if settings.simulator:  # development only, alone, on loopback: config.load refuses anything else
        app.router.add_get("/simulator", simulator_page)
        app.router.add_post("/simulator/messages", simulator_message)
    for path in ("/webhooks/twilio/messages", "/webhooks/twilio/status", "/webhooks/twilio/voice/status",
                 "/webhooks/telegram"):
        app.router.add_post(path, webhook)
    app.router.add_post(VOICE_PATH, voice_webhook)
    api_voice.setup(app)
    api.setup(app)
    console.setup(app)
    if settings.public_stats:
        public.setup(app)
    join.setup(app)
    join_invited.setup(app)
    return app


async def healthz(request: web.Request) -> web.Response:
    """200 once the database answers."""
    try:
        await request.app[BEACON].db.ping()
    except Exception:  # noqa: BLE001
        return web.json_response({"status": "unavailable"}, status=503)
    return web.json_response({"status": "ok"})


async def webhook_call(request: web.Request, provider: Provider) -> WebhookCall:
    """The call a provider verifies and parses, at the public URL the provider was given (the Host header,
    a proxy's or an attacker's, plays no part); WebhookRejected past the provider's body limit."""
    url = request.app[BEACON].settings.public_url.rstrip("/") + request.path_qs
    return WebhookCall(request.path, url, request.headers, await read_body(request, provider.max_body))


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body: 413 as soon as it passes ``limit`` bytes, 400 when it ends before its Content-Length."""
    length = request.content_length
    if length is not None and length > limit:
        raise WebhookRejected(413, "body too large")
    if length is not None:  # what providers send: a known length, read in one go
        try:
            return await request.content.readexactly(length)
        except asyncio.IncompleteReadError:
            raise WebhookRejected(400, "body shorter than its Content-Length") from None
    body = bytearray()
    async for chunk in request.content.iter_chunked(16 * 1024):
        body += chunk
        if len(body) > limit:
            raise WebhookRejected(413, "body too large")
    return bytes(body)


async def webhook(request: web.Request) -> web.Response:
    """Any provider webhook: verify and parse, store, answer; process afterwards."""
    beacon = request.app[BEACON]
    channel = next((p for p in beacon.providers.values() if request.path in p.webhook_paths), None)
    if channel is None:
        raise web.HTTPNotFound(text="channel not configured")
    try:
        received = await channel.receive(await webhook_call(request, channel))
    except WebhookRejected as exc:
        REJECTED.labels(channel.name, str(exc.status)).inc()
        log.info("webhook.rejected", provider=channel.name, status=exc.status)
        return web.Response(status=exc.status, text=exc.reason)
    for message in received.messages:
        await beacon.intake.accept(channel.name, message)
    for status in received.statuses:
        await beacon.service.record_status(channel.name, status)
    return web.Response(text=received.ack_body, content_type=received.ack_content_type)


async def voice_webhook(request: web.Request) -> web.Response:
    """A phone call's webhook (signed like messages): answered with the TwiML of its next step."""
    beacon = request.app[BEACON]
    channel = beacon.providers.get(ProviderName.TWILIO)
    if not isinstance(channel, TwilioChannel):
        raise web.HTTPNotFound(text="channel not configured")
    try:
        event = channel.receive_call(await webhook_call(request, channel))
    except WebhookRejected as exc:
        REJECTED.labels(channel.name, str(exc.status)).inc()
        log.info("webhook.rejected", provider=channel.name, status=exc.status)
        return web.Response(status=exc.status, text=exc.reason)
    return web.Response(text=await beacon.calls.answer(event), content_type="text/xml")


async def simulator_page(request: web.Request) -> web.FileResponse:
    """A chat page that talks to the bot as a phone would."""
    return web.FileResponse(STATIC / "simulator.html")


async def simulator_message(request: web.Request) -> web.Response:
    """``{"from", "text"}`` -> ``{"replies": [...]}``: the bot's answers to this message, in order."""
    beacon = request.app[BEACON]
    channel = beacon.providers["simulator"]
    try:
        received = await channel.receive(await webhook_call(request, channel))
    except WebhookRejected as exc:
        return web.json_response({"error": exc.reason}, status=exc.status)
    replies = await beacon.service.handle(channel.name, received.messages[0])
    return web.json_response({"replies": [r.text for r in replies or []]})
