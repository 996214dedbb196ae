"""Waits shared by the tests: each returns on an observable state, within a deadline."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import func, select

from bot.state import Profile, State, Step
from channels.base import Inbound
from domain.vocabulary import ChannelKind, ProviderName
from registry import schema, store
from registry.db import Database
from registry.keys import KeyHolder
from tests.conftest import Running

REGISTERED = Profile(language="en", area_id="tripoli")


async def settle(run: Running, timeout: float = 30.0) -> None:
    """Wait until every stored message is processed and the outbox is drained (retries included).

    Needs the worker (the sender loop) running.
    """
    beacon = run.beacon
    queued = -1
    try:
        async with asyncio.timeout(timeout):
            while True:
                await beacon.service.wait_idle()
                await beacon.sender.wait_idle()
                queued = await unfinished_sends(run)
                if not queued and beacon.service.idle:
                    return
                if queued:  # a retry is due later, or a send is finishing: both come within the deadline
                    await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not settled after {timeout} s: {queued} outbox rows waiting for a retry or in flight, "
                             f"processing idle: {beacon.service.idle}") from None


async def unfinished_sends(run: Running) -> int:
    """Outbox rows queued for a later attempt or claimed by a sender (a call made, its outcome not yet stored)."""
    o = schema.outbox.c
    async with run.beacon.db.read() as conn:
        query = select(func.count()).select_from(schema.outbox).where(o.status.in_(("queued", "claimed")))
        return int((await conn.execute(query)).scalar_one())


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0,
                     what: str = "condition") -> None:
    """Poll ``check`` (plain or async) until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        held = check()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(0.01)


def inbound(address: str, text: str, channel: ChannelKind = ChannelKind.SIMULATOR) -> Inbound:
    """A new message from ``address``, as a provider would hand it over."""
    return Inbound(channel=channel, address=address, text=text, provider_id=secrets.token_hex(8),
                   received_at=datetime.now(UTC))


async def enrol(db: Database, keys: KeyHolder, address: str, profile: Profile = REGISTERED, *,
                channel: ChannelKind = ChannelKind.SIMULATOR, provider: str = ProviderName.SIMULATOR) -> int:
    """A consented registrant with ``profile`` (their first message processed), written straight into the
    registry; their id."""
    now = datetime.now(UTC)
    async with db.write() as conn:
        [stored] = await store.store_inbound(conn, keys.ring, [(provider, inbound(address, "JOIN", channel))])
        assert stored is not None
        await store.record_consent(conn, stored.registrant_id, "2026-11", profile.language or "en", channel, now)
        await store.save_state(conn, keys.ring, stored.registrant_id, State(),
                               State(step=Step.IDLE, profile=profile, consented=True), now)
        await conn.execute(schema.inbound.update().where(schema.inbound.c.id == stored.inbound_id)
                           .values(processed_at=now))
    return stored.registrant_id
