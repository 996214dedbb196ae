"""The running process: one :class:`Beacon` holds every part, and :data:`BEACON` finds it on the app.

A leaf of the web layer: handlers, the CLI and the app all import it, and it imports none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from aiohttp import web

from beacon.calls import Calls
from beacon.config import Settings
from beacon.intake import Intake
from beacon.service import Service
from bot.state import BotConfig
from campaigns.scheduler import Runner
from campaigns.sender import Sender
from campaigns.webhook_sender import WebhookSender
from channels.base import Provider
from channels.limits import Limiters, rate_limiter
from channels.simulator import SimulatorChannel
from channels.telegram import TelegramChannel
from channels.twilio import TwilioChannel
from domain.areas import Gazetteer
from domain.vocabulary import ChannelKind, ProviderName
from registry import audit
from registry.crypto import MasterKeys
from registry.db import Database
from registry.keys import KeyHolder, load_keyring
from registry.public_table import PublicTable
from registry.publication import ProtectedTables
from registry.send_rates import SharedRates
from registry.single_process import sole_process

log = structlog.get_logger("beacon.context")


@dataclass
class Beacon:
    """Everything a running process holds."""

    settings: Settings
    db: Database
    keys: KeyHolder
    gazetteer: Gazetteer
    providers: dict[str, Provider]  # by ProviderName
    sender: Sender
    service: Service
    runner: Runner
    tables: ProtectedTables  # protected tables by their counts, shared by the API, console and reports
    intake: Intake  # webhook messages: stored, or spooled to disk while the database stalls
    webhooks: WebhookSender  # outbound webhook notifications, delivered by the worker
    calls: Calls  # phone calls' webhooks, answered with TwiML
    public: PublicTable = field(default_factory=PublicTable)  # /public's table, refreshed on a schedule
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def master_keys(settings: Settings) -> MasterKeys:
    """The master keys from BEACON_KEYS, or the development key file."""
    if settings.keys:
        return MasterKeys.parse(settings.keys)
    log.warning("keys.development_file", path=str(settings.keys_file))
    return MasterKeys.development(settings.keys_file)


def make_providers(settings: Settings, limiters: Limiters = rate_limiter) -> dict[str, Provider]:
    """The providers this configuration enables, their rate limits made by ``limiters``."""
    providers: dict[str, Provider] = {ProviderName.SIMULATOR: SimulatorChannel()} if settings.simulator else {}
    if settings.twilio:
        providers[ProviderName.TWILIO] = TwilioChannel(settings.twilio, settings.public_url,
                                                       rate_limits=settings.rate_limits, limiters=limiters)
    if settings.telegram:
        providers[ProviderName.TELEGRAM] = TelegramChannel(settings.telegram, rate_limits=settings.rate_limits,
                                                           limiters=limiters)
    return providers


def family_channel(settings: Settings) -> ChannelKind | None:
    """The channel that reaches family contacts (phone numbers): SMS when Twilio has an SMS sender,
    the simulator when it is on, else none (the bot then does not offer to share the status)."""
    twilio = settings.twilio
    if twilio is not None and (twilio.sms_from or twilio.messaging_service_sid):
        return ChannelKind.SMS
    if settings.simulator:
        return ChannelKind.SIMULATOR
    return None


@contextlib.asynccontextmanager
async def open_beacon(settings: Settings) -> AsyncIterator[Beacon]:
    """Connect, migrate, load keys and providers; close everything on exit."""
    db = Database(settings.database_url)
    try:
        async with contextlib.AsyncExitStack() as held:
            if db.path is not None:
                held.enter_context(sole_process(db.path))
            async with _open(settings, db) as beacon:
                yield beacon
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def _open(settings: Settings, db: Database) -> AsyncIterator[Beacon]:
    """Migrate, load keys and providers on an open database; stop the parts on exit."""
    await db.migrate()
    master = master_keys(settings)
    audit.use(master)
    keys = KeyHolder(await load_keyring(db, master), master)
    gazetteer = Gazetteer.load(settings.areas_file)
    # One SQLite process paces its own sends; on PostgreSQL every process shares each provider's limit.
    providers = make_providers(settings, rate_limiter if db.sqlite else SharedRates(db))
    by_channel: dict[str, Provider] = {kind: p for p in providers.values() for kind in p.channels}
    sender = Sender(db, keys, by_channel, lease=timedelta(seconds=settings.outbox_lease_seconds),
                    capacity=settings.sender_capacity,
                    default_language=settings.default_language)
    family = family_channel(settings)
    bot = BotConfig(gazetteer=gazetteer, operator=settings.operator_name,
                    retention_months=settings.retention_months, default_language=settings.default_language,
                    family_sharing=family is not None)
    service = Service(db, keys, bot, providers, sender, family_channel=family,
                      call_attempts=settings.voice_max_attempts, call_retry_seconds=settings.voice_retry_seconds)
    runner = Runner(db, keys, gazetteer, sender, default_language=settings.default_language,
                    family_channel=family, max_reminders=settings.max_reminders,
                    calls=bool(settings.twilio and settings.twilio.voice_from))
    intake = Intake(service, keys, settings.spool_dir)
    webhooks = WebhookSender(db, keys, retry_seconds=settings.webhook_retry_seconds)
    calls = Calls(db, keys, bot, sender, gazetteer, public_url=settings.public_url,
                  prompts_dir=settings.voice_prompts_dir, family_channel=family)
    beacon = Beacon(settings, db, keys, gazetteer, providers, sender, service, runner, ProtectedTables(), intake,
                    webhooks, calls)
    for provider in providers.values():
        await provider.start()
    try:
        yield beacon
    finally:
        beacon.stop.set()
        await beacon.service.close()
        for provider in providers.values():
            await provider.close()


BEACON = web.AppKey("beacon", Beacon)
