"""An inbound message is run through the bot once even when two processes take it up together (the sweep
of one web process racing another's processing, or a worker's start-up recovery): on PostgreSQL the
second finds it claimed and leaves it."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from beacon.service import Service
from bot.state import BotConfig
from campaigns.sender import Sender
from channels.base import Inbound
from domain.areas import Gazetteer
from domain.vocabulary import ChannelKind
from registry import schema
from registry.crypto import MasterKeys
from registry.db import Database
from registry.keys import KeyHolder, load_keyring
from tests.conftest import POSTGRES_URL, dev_keys, reset_postgres

MESSAGES = 20


@pytest.mark.slow
async def test_two_processes_racing_for_one_message_reply_once() -> None:
    if not POSTGRES_URL:
        pytest.skip("BEACON_TEST_POSTGRES_URL is not set")
    await reset_postgres(POSTGRES_URL)
    master = MasterKeys.parse(dev_keys())
    bot = BotConfig(gazetteer=Gazetteer.load())
    async with AsyncExitStack() as stack:
        services = []
        for _ in range(2):
            db = Database(POSTGRES_URL)
            stack.push_async_callback(db.close)
            await db.migrate()
            keys = KeyHolder(await load_keyring(db, master), master)
            service = Service(db, keys, bot, {}, Sender(db, keys, {}), family_channel=None)
            stack.push_async_callback(service.close)
            services.append(service)
        one, two = services
        stored = [await one.receive("twilio", Inbound(ChannelKind.SMS, f"+23480100000{n:02d}", "JOIN", f"SM{n}",
                                                      datetime.now(UTC))) for n in range(MESSAGES)]
        replies = await asyncio.gather(*(s.process(x.inbound_id) for x in stored if x for s in services))
        async with one.db.read() as conn:
            queued = (await conn.execute(select(func.count()).select_from(schema.outbox))).scalar_one()
    answered = [bool(r) for r in replies]
    assert sum(answered) == MESSAGES  # for each message, one of the two ran the bot
    assert queued == sum(len(r) for r in replies)
