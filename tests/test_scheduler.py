"""The broadcast and reminder runner (campaigns/scheduler.py), against a real SQLite file."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bot import texts
from bot.i18n import gettext_for
from campaigns import broadcasts
from campaigns.broadcasts import Audience
from campaigns.scheduler import Runner
from campaigns.sender import Sender
from channels.simulator import SimulatorChannel
from domain.vocabulary import ChannelKind, ProviderName
from registry import schema, store
from registry.db import Database
from registry.keys import KeyHolder
from tests.helpers import REGISTERED, enrol

PHONE, OTHER_PHONE, RELATIVE = "+2348010000001", "+2348010000002", "+2348010000099"
CHAT = "4711"  # a Telegram chat id


async def broadcast(db: Database, *, check_in: bool = False, send_at: datetime | None = None,
                    remind_after_minutes: int | None = None, areas: tuple[str, ...] = ()) -> int:
    return await broadcasts.create(db, texts_by_language={"en": "Storm tonight"}, audience=Audience(areas=areas),
                                   check_in=check_in, send_at=send_at, remind_after_minutes=remind_after_minutes,
                                   created_by="resp")


async def status(db: Database, broadcast_id: int) -> str:
    async with db.read() as conn:
        return str((await conn.execute(select(schema.broadcasts.c.status).where(
            schema.broadcasts.c.id == broadcast_id))).scalar_one())


async def count(db: Database, table: Any, *where: Any) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


async def reminders_due(db: Database) -> None:
    """Move every recipient's last message back past the reminder delay."""
    async with db.write() as conn:
        await conn.execute(update(schema.recipients).values(last_sent_at=datetime.now(UTC) - timedelta(minutes=31)))


async def test_a_due_broadcast_reaches_its_audience_once(runner: Runner, sender: Sender, db: Database,
                                                        keys: KeyHolder, simulator: SimulatorChannel) -> None:
    await enrol(db, keys, PHONE)
    await enrol(db, keys, OTHER_PHONE, replace(REGISTERED, area_id="benghazi"))
    now_id = await broadcast(db, areas=("tripoli",))
    later_id = await broadcast(db, send_at=datetime.now(UTC) + timedelta(hours=1))
    assert await runner.run_due() == 1
    assert await runner.run_due() == 0  # done: nothing twice
    assert (await status(db, now_id), await status(db, later_id)) == ("sent", "scheduled")
    await sender.wait_idle()
    assert list(simulator.sent[PHONE]) == ["Storm tonight"] and not simulator.sent[OTHER_PHONE]


async def test_the_running_loop_fans_out_when_woken_and_ends_on_stop(runner: Runner, sender: Sender, db: Database,
                                                                    keys: KeyHolder,
                                                                    simulator: SimulatorChannel) -> None:
    await enrol(db, keys, PHONE)
    stop = asyncio.Event()
    loop = asyncio.create_task(runner.run(stop))
    broadcast_id = await broadcast(db)
    runner.wake()
    async with asyncio.timeout(30):
        while await status(db, broadcast_id) != "sent":
            await asyncio.sleep(0.01)
    stop.set()
    runner.wake()
    await asyncio.wait_for(loop, 30)
    await sender.wait_idle()
    assert list(simulator.sent[PHONE]) == ["Storm tonight"]


async def test_reminders_go_to_the_other_channel_and_tell_the_family_once(
        runner: Runner, sender: Sender, db: Database, keys: KeyHolder, simulator: SimulatorChannel) -> None:
    sharing = replace(REGISTERED, first_name="Amina", family_contact=RELATIVE, share_family=True)
    person = await enrol(db, keys, CHAT, sharing, channel=ChannelKind.TELEGRAM, provider=ProviderName.TELEGRAM)
    async with db.write() as conn:
        await store.link_phone(conn, keys.ring, person, PHONE)
        await conn.execute(update(schema.identities).values(last_channel=ChannelKind.SIMULATOR))  # the one provider
    broadcast_id = await broadcast(db, check_in=True, remind_after_minutes=30)
    assert await runner.run_due() == 1
    assert await runner.send_reminders() == 0  # not due yet
    await reminders_due(db)
    assert await runner.send_reminders() == 1
    assert await runner.send_reminders() == 0  # the clock restarted with the reminder
    await reminders_due(db)
    assert await runner.send_reminders() == 1
    await reminders_due(db)
    assert await runner.send_reminders() == 0  # two at most
    rc = schema.recipients.c
    assert await count(db, schema.recipients, rc.broadcast_id == broadcast_id, rc.reminders_sent == 2) == 1
    await sender.wait_idle()
    [check_in] = [sent for address, sent in simulator.sent.items() if address in (PHONE, CHAT) and len(sent) == 1]
    assert "Storm tonight" in check_in[0]
    [reminded] = [sent for address, sent in simulator.sent.items() if address in (PHONE, CHAT) and len(sent) == 2]
    assert list(reminded) == [gettext_for("en", texts.REMINDER)] * 2  # both on the other channel
    [told] = simulator.sent[RELATIVE]  # "no reply yet", with the first reminder only
    assert "Amina" in told


async def test_an_answered_check_in_is_not_reminded(runner: Runner, db: Database, keys: KeyHolder) -> None:
    person = await enrol(db, keys, PHONE)
    broadcast_id = await broadcast(db, check_in=True, remind_after_minutes=30)
    await runner.run_due()
    rc = schema.recipients.c
    async with db.write() as conn:
        await conn.execute(update(schema.recipients).where(rc.registrant_id == person).values(answer="safe"))
    await reminders_due(db)
    assert await runner.send_reminders() == 0
    assert await count(db, schema.recipients, rc.broadcast_id == broadcast_id, rc.reminders_sent == 0) == 1


@pytest.mark.slow
async def test_the_schedule_runs_extra_jobs_until_stopped(runner: Runner) -> None:
    ran = asyncio.Event()

    async def job() -> None:
        ran.set()

    runner.start_schedule([(job, 1)])
    await asyncio.wait_for(ran.wait(), 30)
    runner.stop_schedule()
    runner.stop_schedule()  # twice is harmless
