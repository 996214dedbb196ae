"""The message path (beacon/service.py): store, process, queue replies, apply delivery reports, and say when it
is idle; against a real SQLite file with the simulator as provider."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select, update

from beacon.service import Service
from campaigns.sender import Sender
from channels.base import StatusUpdate
from channels.simulator import SimulatorChannel
from domain.vocabulary import ProviderName
from registry import schema
from registry.db import Database
from tests.helpers import inbound

PHONE = "+2348010000001"
SIM = ProviderName.SIMULATOR


async def count(db: Database, table: Any, *where: Any) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


async def unprocessed(db: Database) -> int:
    return await count(db, schema.inbound, schema.inbound.c.processed_at.is_(None))


async def test_a_message_is_stored_processed_and_its_replies_queued(service: Service, db: Database) -> None:
    replies = await service.handle(SIM, inbound(PHONE, "JOIN"))
    assert replies and "English" in " ".join(r.text for r in replies)
    assert await count(db, schema.inbound) == 1 and await unprocessed(db) == 0
    assert await count(db, schema.outbox) == len(replies)
    assert await count(db, schema.registrants) == 1


async def test_a_message_seen_before_is_stored_once_and_answered_once(service: Service, db: Database) -> None:
    message = inbound(PHONE, "JOIN")
    assert await service.handle(SIM, message)
    assert await service.handle(SIM, message) is None
    assert await service.receive(SIM, message) is None
    assert await count(db, schema.inbound) == 1


async def test_a_burst_shares_transactions_and_each_caller_gets_its_own_row(service: Service, db: Database) -> None:
    messages = [inbound(f"+23480100001{n:02d}", "JOIN") for n in range(30)]
    stored = await asyncio.gather(*(service.receive(SIM, m) for m in messages), service.receive(SIM, messages[0]))
    ids = [s.inbound_id for s in stored if s is not None]
    assert len(ids) == len(set(ids)) == 30  # the repeat got None
    assert await count(db, schema.registrants) == 30


async def test_processing_later_runs_in_order_and_wait_idle_waits_for_it(service: Service, db: Database) -> None:
    assert service.idle
    await service.wait_idle()  # nothing to wait for
    for text in ("JOIN", "1", "1"):
        message = inbound(PHONE, text)
        stored = await service.receive(SIM, message)
        assert stored is not None
        service.process_later(SIM, stored, message)
    assert not service.idle
    await service.wait_idle()
    assert service.idle
    assert await unprocessed(db) == 0
    r = schema.registrants.c
    async with db.read() as conn:
        [(step, language, consented)] = (await conn.execute(select(r.step, r.language, r.consented))).all()
    assert (language, consented) == ("en", True) and step != "new"  # the three answers, in order


async def test_messages_arriving_as_a_worker_finishes_are_processed(service: Service, db: Database) -> None:
    """Each message is handed over a few event-loop turns after the one before, so some land in the very
    turn a worker finds the backlog empty: none may be left without a worker."""
    for n in range(12):
        message = inbound(f"+23480100002{n:02d}", "JOIN")
        stored = await service.receive(SIM, message)
        assert stored is not None
        service.process_later(SIM, stored, message)
        for _ in range(n):
            await asyncio.sleep(0)
    await asyncio.wait_for(service.wait_idle(), 30)
    assert await unprocessed(db) == 0


async def test_recover_processes_what_was_stored_but_never_processed(service: Service, db: Database) -> None:
    for text in ("JOIN", "1"):
        assert await service.receive(SIM, inbound(PHONE, text))  # then the process died
    assert await unprocessed(db) == 2
    assert await service.recover(older_than=3600) == 0  # too recent: probably still on its way
    assert await service.recover() == 2
    assert await unprocessed(db) == 0
    assert await service.recover() == 0


async def test_a_later_message_taken_first_waits_for_the_earlier_ones(service: Service, db: Database) -> None:
    first = await service.receive(SIM, inbound(PHONE, "JOIN"))
    second = await service.receive(SIM, inbound(PHONE, "2"))
    assert first and second
    taken_first = await service.process(second.inbound_id)  # e.g. another worker had it first
    assert await unprocessed(db) == 0
    assert await service.process(first.inbound_id) == []  # it was stepped already, in its turn
    other = "+2348010000002"
    in_order = []
    for text in ("JOIN", "2"):
        stored = await service.receive(SIM, inbound(other, text))
        assert stored
        in_order = await service.process(stored.inbound_id)
    assert [r.text for r in taken_first] == [r.text for r in in_order] != []


async def test_wait_idle_and_the_sender_deliver_every_reply(service: Service, sender: Sender,
                                                            simulator: SimulatorChannel, db: Database) -> None:
    replies = await service.handle(SIM, inbound(PHONE, "JOIN"))
    assert replies is not None
    await service.wait_idle()
    await sender.wait_idle()
    assert list(simulator.sent[PHONE]) == [r.text for r in replies]
    o = schema.outbox.c
    assert await count(db, schema.outbox, o.status != "delivered") == 0


async def sent_row(db: Database) -> tuple[int, str]:
    o = schema.outbox.c
    async with db.read() as conn:
        row = (await conn.execute(select(o.id, o.provider_id).order_by(o.id))).first()
    assert row is not None
    return row.id, row.provider_id


async def status_of(db: Database, row_id: int) -> str:
    async with db.read() as conn:
        return str((await conn.execute(select(schema.outbox.c.status).where(schema.outbox.c.id == row_id)))
                   .scalar_one())


async def test_delivery_reports_move_a_message_forward_only(service: Service, sender: Sender, db: Database) -> None:
    await service.handle(SIM, inbound(PHONE, "JOIN"))
    await sender.wait_idle()
    row_id, provider_id = await sent_row(db)
    for reported, expected in [("read", "read"), ("delivered", "read"), ("sent", "read"), ("failed", "failed")]:
        await service.record_status(SIM, StatusUpdate(provider_id, reported))
        assert await status_of(db, row_id) == expected, reported
    assert service.idle


async def test_a_report_that_beats_its_row_is_applied_once_the_row_has_the_id(
        service: Service, sender: Sender, db: Database) -> None:
    await service.handle(SIM, inbound(PHONE, "JOIN"))
    await sender.wait_idle()
    row_id, provider_id = await sent_row(db)
    o = schema.outbox.c
    async with db.write() as conn:  # as if the sender had not yet written the provider's id
        await conn.execute(update(schema.outbox).where(o.id == row_id).values(provider_id=None, status="claimed"))
    await service.record_status(SIM, StatusUpdate(provider_id, "read"))
    assert not service.idle  # the report waits for its row
    async with db.write() as conn:
        await conn.execute(update(schema.outbox).where(o.id == row_id).values(provider_id=provider_id,
                                                                               status="sent"))
    await asyncio.wait_for(service.wait_idle(), 30)
    assert await status_of(db, row_id) == "read"


async def test_a_report_for_an_unknown_message_is_given_up(service: Service, db: Database,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("beacon.service.STATUS_RETRY_DELAYS", (0.01, 0.02))
    await service.record_status(SIM, StatusUpdate("sim-unknown", "delivered"))
    await asyncio.wait_for(service.wait_idle(), 30)
    assert await count(db, schema.outbox) == 0


async def test_close_drops_reports_still_waiting(service: Service) -> None:
    await service.record_status(SIM, StatusUpdate("sim-unknown", "delivered"))
    assert not service.idle
    await service.close()
    await asyncio.wait_for(service.wait_idle(), 30)
