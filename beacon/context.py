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
from channels.base import Provider
from channels.simulator import SimulatorChannel
from channels.telegram import TelegramChannel
from channels.twilio import TwilioChannel
from domain.areas import Gazetteer
from domain.vocabulary import ChannelKind, ProviderName
from registry import audit
from registry.crypto import MasterKeys
from registry.db import Database
from registry.keys import KeyHolder, load_keyring
from registry.publication import ProtectedTables

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
    calls: Calls  # phone calls' webhooks, answered with TwiML
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def master_keys(settings: Settings) -> MasterKeys:
    """The master keys from BEACON_KEYS, or the development key file."""
    if settings.keys:
        return MasterKeys.parse(settings.keys)
    log.warning("keys.development_file", path=str(settings.keys_file))
    return MasterKeys.development(settings.keys_file)


def make_providers(settings: Settings) -> dict[str, Provider]:
    """The providers this configuration enables."""
    providers: dict[str, Provider] = {ProviderName.SIMULATOR: SimulatorChannel()} if settings.simulator else {}
    if settings.twilio:
        providers[ProviderName.TWILIO] = TwilioChannel(settings.twilio, settings.public_url,
                                                       rate_limits=settings.rate_limits)
    if settings.telegram:
        providers[ProviderName.TELEGRAM] = TelegramChannel(settings.telegram, rate_limits=settings.rate_limits)
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
        await db.migrate()
        master = master_keys(settings)
        audit.use(master)
        keys = KeyHolder(await load_keyring(db, master), master)
        gazetteer = Gazetteer.load(settings.areas_file)
        providers = make_providers(settings)
        by_channel: dict[str, Provider] = {kind: p for p in providers.values() for kind in p.channels}
        sender = Sender(db, keys, by_channel, lease=timedelta(seconds=settings.outbox_lease_seconds),
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
        calls = Calls(db, keys, bot, sender, gazetteer, public_url=settings.public_url,
                      prompts_dir=settings.voice_prompts_dir, family_channel=family)
        beacon = Beacon(settings, db, keys, gazetteer, providers, sender, service, runner, ProtectedTables(), intake,
                        calls)
        for provider in providers.values():
            await provider.start()
        try:
            yield beacon
        finally:
            beacon.stop.set()
            await beacon.service.close()
            for provider in providers.values():
                await provider.close()
    finally:
        await db.close()


BEACON = web.AppKey("beacon", Beacon)
