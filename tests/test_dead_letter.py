"""One message whose processing keeps failing is set aside (a dead letter) and holds nothing up: the
person's later messages are answered, operators see it in /metrics, the CLI and the console, and can put
it back. The fault is real: the message's sealed body no longer authenticates."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from beacon.service import DEAD_LETTER_AFTER, PROCESS_ATTEMPTS, Service
from campaigns.sender import Sender
from channels.simulator import SimulatorChannel
from domain.vocabulary import ProviderName
from registry import audit, dead_letter, schema, store, users
from registry.crypto import MasterKeys
from registry.db import Database
from registry.keys import KeyHolder, load_keyring
from tests.conftest import StartBeacon
from tests.helpers import inbound
from tests.test_cli import beacon, env  # noqa: F401 - env: the CLI tests' fixture, used here too
from tests.test_console import HTTP, PASSWORD, sign_in

PHONE = "+2348010000091"
SIM = ProviderName.SIMULATOR
_i = schema.inbound.c


async def corrupt(db: Database, inbound_id: int) -> None:
    """Flip the last byte of a stored message's sealed body: it no longer authenticates."""
    async with db.write() as conn:
        body = (await conn.execute(select(_i.body_ct).where(_i.id == inbound_id))).scalar_one()
        await conn.execute(update(schema.inbound).where(_i.id == inbound_id)
                           .values(body_ct=body[:-1] + bytes([body[-1] ^ 1])))


async def inbound_row(db: Database, inbound_id: int) -> Any:
    async with db.read() as conn:
        return (await conn.execute(select(schema.inbound).where(_i.id == inbound_id))).one()


async def stored_unprocessed(db: Database, keys: KeyHolder, text: str = "JOIN") -> int:
    """A message stored as a webhook stores it, its body corrupted, not yet processed; its id."""
    async with db.write() as conn:
        [stored] = await store.store_inbound(conn, keys.ring, [(SIM, inbound(PHONE, text))])
    assert stored is not None
    await corrupt(db, stored.inbound_id)
    return stored.inbound_id


async def test_a_message_that_keeps_failing_is_set_aside_and_the_next_one_is_answered(
        service: Service, sender: Sender, simulator: SimulatorChannel, db: Database) -> None:
    message = inbound(PHONE, "JOIN")
    stored = await service.receive(SIM, message)
    assert stored is not None
    await corrupt(db, stored.inbound_id)
    service.process_later(SIM, stored, message)
    await service.wait_idle()
    row = await inbound_row(db, stored.inbound_id)
    assert (row.attempts, row.failed_at, row.processed_at) == (PROCESS_ATTEMPTS, None, None)
    assert row.error == "KeyringError"  # the class only: the message's text is nowhere

    sweeps = 0
    while (await inbound_row(db, stored.inbound_id)).failed_at is None:
        await service.recover()
        sweeps += 1
        assert sweeps <= DEAD_LETTER_AFTER, "never set aside"
    assert PROCESS_ATTEMPTS + sweeps == DEAD_LETTER_AFTER
    assert await service.recover() == 0  # the sweep no longer picks it up
    assert (await inbound_row(db, stored.inbound_id)).attempts == DEAD_LETTER_AFTER

    later = inbound(PHONE, "JOIN")
    replies = await service.handle(SIM, later)
    assert replies and "English" in " ".join(r.text for r in replies)
    await sender.wait_idle()
    assert any("English" in text for text in simulator.sent[PHONE])  # delivered
    async with db.read() as conn:
        [dead] = await dead_letter.listing(conn)
        assert await dead_letter.waiting(conn) == 1
    assert (dead.id, dead.channel, dead.attempts, dead.error) == (
        stored.inbound_id, "simulator", DEAD_LETTER_AFTER, "KeyringError")


async def test_a_message_put_back_is_processed_by_the_next_sweep(service: Service, db: Database,
                                                                 keys: KeyHolder) -> None:
    inbound_id = await stored_unprocessed(db, keys)
    for _ in range(DEAD_LETTER_AFTER):
        await service.recover()
    async with db.write() as conn:
        assert await dead_letter.put_back(conn, inbound_id)
        assert not await dead_letter.put_back(conn, inbound_id)  # no longer set aside
    assert (await inbound_row(db, inbound_id)).attempts == 0
    await service.recover()
    row = await inbound_row(db, inbound_id)
    assert (row.attempts, row.failed_at, row.processed_at) == (1, None, None)  # tried again, counted afresh


def metric(text: str, name: str) -> float:
    """The value of one unlabelled sample, or the sum of a labelled metric's samples."""
    values = [float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)]
    return sum(values)


@pytest.mark.slow
async def test_operators_see_the_dead_letters_in_metrics_and_on_the_console(
        start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    db = run.beacon.db
    before = metric(await (await run.client.get("/metrics")).text(), "beacon_inbound_dead_letter_total")
    inbound_id = await stored_unprocessed(db, run.beacon.keys)
    for _ in range(DEAD_LETTER_AFTER):  # the sweep at start may have counted one more: the count stops anyway
        await run.beacon.service.recover()
    assert (await inbound_row(db, inbound_id)).failed_at is not None
    await run.beacon.service.recover()  # the sweep keeps the gauge up to date
    text = await (await run.client.get("/metrics")).text()
    assert metric(text, "beacon_inbound_dead_letter_total") == before + 1
    assert metric(text, "beacon_inbound_dead_letter_waiting") == 1
    assert PHONE not in text

    await users.create_user(db, "root-1", "admin", PASSWORD)
    await users.create_user(db, "amal", "responder", PASSWORD)
    await sign_in(run, "root-1")
    page = await (await run.client.get("/console/overview")).text()
    assert re.search(r'Messages set aside</span><span class="kpi-value" id="dead-letters">1<', page)
    run.client.session.cookie_jar.clear()
    await sign_in(run, "amal")
    assert "Messages set aside" not in await (await run.client.get("/console/overview")).text()


@pytest.mark.slow
async def test_the_cli_lists_dead_letters_and_puts_one_back_audited(env: dict[str, str]) -> None:  # noqa: F811
    assert (await beacon(env, "migrate")).code == 0
    database = Database(env["BEACON_DATABASE_URL"])
    try:
        ring = await load_keyring(database, MasterKeys.parse(env["BEACON_KEYS"]))
        async with database.write() as conn:
            [stored] = await store.store_inbound(conn, ring, [(SIM, inbound(PHONE, "HELP"))])
            assert stored is not None
            for _ in range(DEAD_LETTER_AFTER):
                await dead_letter.record_failure(conn, stored.inbound_id, "ValueError", datetime.now(UTC),
                                                 DEAD_LETTER_AFTER)
    finally:
        await database.close()

    listed = await beacon(env, "inbound", "failed")
    assert listed.code == 0, listed.err
    [line] = [x for x in listed.out.splitlines() if x.split()[:1] == [str(stored.inbound_id)]]
    assert line.split()[2:] == ["simulator", str(DEAD_LETTER_AFTER), "ValueError"]
    assert PHONE not in listed.out + listed.err and "HELP" not in listed.out

    again = await beacon(env, "inbound", "retry", str(stored.inbound_id))
    assert again.code == 0, again.err
    assert "no messages set aside" in (await beacon(env, "inbound", "failed")).out
    missing = await beacon(env, "inbound", "retry", str(stored.inbound_id))
    assert missing.code == 2 and "not set aside" in missing.err

    database = Database(env["BEACON_DATABASE_URL"])
    try:
        async with database.read() as conn:
            a = schema.audit_log.c
            entries = [tuple(e) for e in (await conn.execute(select(a.actor, a.action, a.subject))).all()]
            assert ("cli", "inbound.retried", str(stored.inbound_id)) in entries
            assert (await audit.verify(conn, None)).ok
            row = (await conn.execute(select(schema.inbound).where(_i.id == stored.inbound_id))).one()
    finally:
        await database.close()
    assert (row.failed_at, row.attempts, row.processed_at) == (None, 0, None)  # due again for the sweep


async def test_failures_are_counted_listed_and_put_back_on_each_database(database_url: str, keys: KeyHolder) -> None:
    database = Database(database_url)
    try:
        await database.migrate()
        ring = await load_keyring(database, keys.master)
        async with database.write() as conn:
            [stored] = await store.store_inbound(conn, ring, [(SIM, inbound(PHONE, "HELP"))])
            assert stored is not None
            verdicts = [await dead_letter.record_failure(conn, stored.inbound_id, "ValueError", datetime.now(UTC), 3)
                        for _ in range(4)]
        assert verdicts == [None, None, "simulator", None]  # set aside once; not counted after that
        async with database.read() as conn:
            [dead] = await dead_letter.listing(conn)
            assert await dead_letter.waiting(conn) == 1
        assert (dead.id, dead.attempts, dead.error) == (stored.inbound_id, 3, "ValueError")
        async with database.write() as conn:
            assert await dead_letter.put_back(conn, stored.inbound_id)
        async with database.read() as conn:
            assert await dead_letter.listing(conn) == [] and await dead_letter.waiting(conn) == 0
    finally:
        await database.close()
