"""Scheduled work runs once per due item with several processes on one PostgreSQL database: two schedulers,
each with its own connections, race for the same broadcast, reminders, report runs, nudges and retention
warnings, and every item is done by exactly one of them."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from campaigns import broadcasts, reports, upkeep
from campaigns.broadcasts import Audience
from campaigns.scheduler import Runner
from campaigns.sender import Sender
from domain.areas import Gazetteer
from domain.vocabulary import ChannelKind
from registry import retention, schema
from registry.aggregates import StatsQuery
from registry.crypto import MasterKeys
from registry.db import Database
from registry.keys import KeyHolder, load_keyring
from registry.publication import ProtectedTables
from tests.conftest import POSTGRES_URL, dev_keys, reset_postgres
from tests.seeding import seed_registrants

PEOPLE = 300
NUDGED = range(1, 81)  # details not confirmed for over 180 days
WARNED = range(51, 81)  # of those, profiles about to expire


class Scheduler:
    """What one worker process holds for its scheduled jobs: its own engine, keys and runner."""

    def __init__(self, db: Database, keys: KeyHolder, gazetteer: Gazetteer) -> None:
        self.db, self.keys, self.gazetteer = db, keys, gazetteer
        sender = Sender(db, keys, {})  # not running: the test counts what is queued
        self.runner = Runner(db, keys, gazetteer, sender, default_language="en", family_channel=ChannelKind.SMS)


@pytest.fixture
async def schedulers() -> AsyncIterator[tuple[Scheduler, Scheduler]]:
    if not POSTGRES_URL:
        pytest.skip("BEACON_TEST_POSTGRES_URL is not set")
    await reset_postgres(POSTGRES_URL)
    master = MasterKeys.parse(dev_keys())
    gazetteer = Gazetteer.load()
    async with AsyncExitStack() as stack:
        pair = []
        for _ in range(2):
            db = Database(POSTGRES_URL)
            stack.push_async_callback(db.close)
            await db.migrate()
            pair.append(Scheduler(db, KeyHolder(await load_keyring(db, master), master), gazetteer))
        yield pair[0], pair[1]


async def non_broadcast_messages(db: Database) -> Counter[int]:
    o = schema.outbox.c
    async with db.read() as conn:
        rows = (await conn.execute(select(o.registrant_id).where(o.broadcast_id.is_(None)))).scalars().all()
    return Counter(int(x) for x in rows)


@pytest.mark.slow
async def test_two_schedulers_run_each_due_item_once(schedulers: tuple[Scheduler, Scheduler]) -> None:
    one, two = schedulers
    db = one.db
    await seed_registrants(db, one.keys, PEOPLE)
    broadcast_id = await broadcasts.create(db, texts_by_language={"en": "Storm tonight"}, audience=Audience(),
                                           check_in=True, send_at=None, remind_after_minutes=30,
                                           created_by="resp")
    schedules = [await reports.create_schedule(db, name=f"daily {n}", format="csv", query=StatsQuery(by=("area",)),
                                               every_hours=24, actor="analyst") for n in range(3)]
    both = (one, two) * 2  # each process ticking twice at once

    await asyncio.gather(*(s.runner.run_due() for s in both),
                         *(reports.run_due(s.db, s.gazetteer, ProtectedTables(), 10) for s in both))
    o, rc, runs = schema.outbox.c, schema.recipients.c, schema.report_runs.c
    async with db.read() as conn:
        sent = Counter((await conn.execute(select(o.registrant_id).where(o.broadcast_id == broadcast_id)))
                       .scalars().all())
        per_schedule = dict((await conn.execute(select(runs.schedule_id, func.count()).group_by(runs.schedule_id)))
                            .all())
    assert sent == Counter(range(1, PEOPLE + 1))
    assert per_schedule == dict.fromkeys(schedules, 1)

    async with db.write() as conn:
        await conn.execute(update(schema.recipients).values(last_sent_at=datetime.now(UTC) - timedelta(minutes=31)))
    reminded = await asyncio.gather(*(s.runner.send_reminders() for s in both))
    assert sum(reminded) == PEOPLE
    assert await non_broadcast_messages(db) == Counter(range(1, PEOPLE + 1))
    async with db.read() as conn:
        assert set((await conn.execute(select(rc.reminders_sent))).scalars().all()) == {1}

    now = datetime.now(UTC)
    r = schema.registrants.c
    async with db.write() as conn:
        await conn.execute(update(schema.registrants).where(r.id.in_(NUDGED)).values(confirmed_at=now - timedelta(
            days=200)))
        await conn.execute(update(schema.registrants).where(r.id.in_(WARNED)).values(confirmed_at=now - timedelta(
            days=700)))
    done = await asyncio.gather(*(upkeep.send_nudges(s.db, s.keys, 180, "en") for s in both),
                                *(upkeep.run_retention(s.db, s.keys, retention.Policy(), "en") for s in both))
    assert sum(done[:len(both)]) == len(NUDGED)
    assert sum(len(report.warnings_due) for report in done[len(both):]) == len(WARNED)
    expected = Counter(range(1, PEOPLE + 1)) + Counter(NUDGED) + Counter(WARNED)
    assert await non_broadcast_messages(db) == expected
