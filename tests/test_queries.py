"""The read queries of campaigns.queries on a real database: the latest broadcasts with their tallies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from campaigns import broadcasts, queries
from registry import schema
from tests.conftest import Running, StartBeacon
from tests.seeding import seed_registrants

PEOPLE = 12


async def sent_broadcast(run: Running, *, check_in: bool, areas: tuple[str, ...] = ()) -> int:
    """A broadcast fanned out to the outbox, as the runner would leave it (no sender runs in these tests)."""
    beacon = run.beacon
    broadcast_id = await broadcasts.create(
        beacon.db, texts_by_language={"en": "Roads north of the river are closed"},
        audience=broadcasts.Audience(areas=areas), check_in=check_in, send_at=None,
        remind_after_minutes=60 if check_in else None, created_by="user:amal")
    while await broadcasts.fan_out_batch(beacon.db, beacon.keys.ring, beacon.gazetteer, broadcast_id, "en",
                                         batch=5) is not None:
        pass
    return broadcast_id


async def settle(run: Running, broadcast_id: int, statuses: list[str], answers: list[str | None]) -> None:
    """Give the broadcast's messages these delivery states and its recipients these answers, in registrant order."""
    rc = schema.recipients.c
    async with run.beacon.db.write() as conn:
        rows = (await conn.execute(select(rc.registrant_id, rc.outbox_id).where(rc.broadcast_id == broadcast_id)
                                   .order_by(rc.registrant_id))).all()
        for row, status in zip(rows, statuses, strict=False):
            await conn.execute(update(schema.outbox).where(schema.outbox.c.id == row.outbox_id).values(status=status))
        for row, answer in zip(rows, answers, strict=False):
            await conn.execute(update(schema.recipients).where(
                rc.broadcast_id == broadcast_id, rc.registrant_id == row.registrant_id).values(answer=answer))


async def summaries(conn: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    """The latest broadcasts one at a time, as the API's single-broadcast view gives them."""
    b = schema.broadcasts.c
    ids = (await conn.execute(select(b.id).order_by(b.id.desc()).limit(limit))).scalars().all()
    return [found for i in ids if (found := await broadcasts.summary(conn, int(i)))]


async def total(run: Running) -> int:
    """How many broadcasts there are."""
    async with run.beacon.db.read() as conn:
        return await queries.broadcast_total(conn)


@contextmanager
def statements(conn: AsyncConnection) -> Iterator[list[str]]:
    """The SQL statements sent on ``conn`` meanwhile."""
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(conn.sync_connection, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(conn.sync_connection, "before_cursor_execute", count)


async def test_latest_broadcasts_carry_the_tallies_of_each(start_beacon: StartBeacon, database_url: str) -> None:
    run = await start_beacon(worker=False, BEACON_DATABASE_URL=database_url)
    await seed_registrants(run.beacon.db, run.beacon.keys, PEOPLE)
    check_in = await sent_broadcast(run, check_in=True)
    await settle(run, check_in, ["sent", "delivered", "read", "read", "failed", "undelivered", "claimed"],
                 ["safe", "safe", "need_help", None, "safe"])
    notice = await sent_broadcast(run, check_in=False)
    await settle(run, notice, ["delivered"] * 6 + ["failed"], [])
    elsewhere = await sent_broadcast(run, check_in=True, areas=("benghazi",))  # nobody lives there
    withdrawn = await sent_broadcast(run, check_in=True)
    await settle(run, withdrawn, ["sent", "sent"], ["need_help"])
    assert await broadcasts.cancel(run.beacon.db, withdrawn, "user:amal") == PEOPLE - 2
    await broadcasts.create(run.beacon.db, texts_by_language={"en": "Curfew from 20:00"},
                            audience=broadcasts.Audience(), check_in=True,
                            send_at=datetime.now(UTC) + timedelta(days=1), remind_after_minutes=None,
                            created_by="user:amal")

    async with run.beacon.db.read() as conn:
        latest = await queries.latest_broadcasts(conn, 50)
        assert latest == await summaries(conn, 50)
        assert [item["id"] for item in await queries.latest_broadcasts(conn, 2)] == [withdrawn + 1, withdrawn]

    shown = {item["id"]: item["counts"] for item in latest}
    assert shown[check_in] == {"recipients": PEOPLE, "queued": PEOPLE - 7 + 1, "sent": 4, "delivered": 3,
                               "failed": 2, "safe": 3, "need_help": 1, "no_reply": PEOPLE - 4}
    assert shown[notice] == {"recipients": PEOPLE, "queued": PEOPLE - 7, "sent": 6, "delivered": 6, "failed": 1}
    assert shown[elsewhere] == {"recipients": 0, "queued": 0, "sent": 0, "delivered": 0, "failed": 0,
                                "safe": 0, "need_help": 0, "no_reply": 0}
    assert shown[withdrawn]["queued"] == 0 and shown[withdrawn]["sent"] == 2
    assert shown[withdrawn + 1]["recipients"] == 0


async def test_the_latest_broadcasts_take_the_same_statements_however_many_there_are(
        start_beacon: StartBeacon, database_url: str) -> None:
    run = await start_beacon(worker=False, BEACON_DATABASE_URL=database_url)
    await seed_registrants(run.beacon.db, run.beacon.keys, PEOPLE)
    counted: list[int] = []
    for many in (1, 3, 8):
        while await total(run) < many:
            await settle(run, await sent_broadcast(run, check_in=True), ["delivered", "failed"], ["safe"])
        async with run.beacon.db.read() as conn:
            with statements(conn) as sent:
                found = await queries.latest_broadcasts(conn, 50)
        assert len(found) == many
        counted.append(len(sent))
    assert counted == [1, 1, 1]
