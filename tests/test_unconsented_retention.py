"""People who never consented: erased after BEACON_UNCONSENTED_DAYS without writing, but an opt-out holds."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from campaigns import upkeep
from registry import retention, schema
from tests.conftest import Running, StartBeacon
from tests.test_broadcasts_e2e import token, wait_counts
from tests.test_telegram_e2e import Chat, settle, sms

PHONE = "+2348010000071"
REGISTERED = "+2348010000072"


async def people(beacon: Running) -> list[tuple[int, bool, bool]]:
    """(id, consented, opted out) of every record."""
    r = schema.registrants.c
    async with beacon.beacon.db.read() as conn:
        return [tuple(row) for row in (await conn.execute(  # type: ignore[misc]
            select(r.id, r.consented, r.opted_out).order_by(r.id))).all()]


async def idle(beacon: Running, days: int) -> None:
    """Move everyone's last message ``days`` into the past."""
    async with beacon.beacon.db.write() as conn:
        await conn.execute(update(schema.registrants).values(last_seen_at=datetime.now(UTC) - timedelta(days=days)))


async def run(beacon: Running) -> retention.Report:
    return await upkeep.run_retention(beacon.beacon.db, beacon.beacon.keys, beacon.settings.retention_policy(), "en")


async def test_a_one_message_sender_is_erased_after_the_window_and_not_before(
        start_beacon: StartBeacon, database_url: str, tmp_path: Path) -> None:
    beacon = await start_beacon(BEACON_DATABASE_URL=database_url, BEACON_UNCONSENTED_DAYS="30")
    await beacon.converse(REGISTERED, "JOIN", "1", "1", "tripoli", "Amina", "0", "0", "0", "0", "0")
    assert await beacon.simulate(PHONE, "is this the embassy?")
    [registered, stranger] = await people(beacon)
    assert registered[1:] == (True, False) and stranger[1:] == (False, False)

    await idle(beacon, 29)
    assert (await run(beacon)).unconsented_erased == 0
    assert await people(beacon) == [registered, stranger]

    await idle(beacon, 31)
    report = await run(beacon)
    assert report.unconsented_erased == 1 and report.profiles_erased == 0
    assert await people(beacon) == [registered]  # the consented registrant is untouched
    i = schema.inbound.c
    async with beacon.beacon.db.read() as conn:
        identities = (await conn.execute(select(schema.identities.c.registrant_id))).scalars().all()
        bodies = (await conn.execute(select(i.body_ct).where(i.registrant_id.is_(None)))).scalars().all()
        secrets_ = (await conn.execute(select(func.count()).select_from(schema.profile_secrets))).scalar_one()
    assert identities == [registered[0]] and bodies == [None] and secrets_ == 1

    # `beacon retention run` says how many it erased.
    assert await beacon.simulate(PHONE, "hello?")
    await idle(beacon, 31)
    await beacon.client.close()
    env = {**os.environ, "BEACON_DATABASE_URL": beacon.settings.database_url, "BEACON_KEYS": beacon.settings.keys or "",
           "BEACON_LOG_FORMAT": "json"}
    done = subprocess.run([str(Path(sys.executable).parent / "beacon"), "retention", "run"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "unconsented_erased=1" in done.stdout.split() and "profiles_erased=0" in done.stdout.split()


async def test_an_opt_out_marker_stays_and_still_blocks_broadcasts(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(twilio=True, telegram=True)
    await sms(beacon, "STOP", PHONE)  # never registered, asks for no messages
    [(marker_id, consented, opted_out)] = await people(beacon)
    assert (consented, opted_out) == (False, True)
    async with beacon.beacon.db.read() as conn:
        [before] = (await conn.execute(select(schema.identities))).all()
    assert before.address_ct

    await idle(beacon, 31)
    assert (await run(beacon)).unconsented_erased == 1
    assert (await run(beacon)).unconsented_erased == 0  # a marker is not erased again
    assert await people(beacon) == [(marker_id, False, True)]
    async with beacon.beacon.db.read() as conn:
        [after] = (await conn.execute(select(schema.identities))).all()
    assert after.bidx == before.bidx and after.address_ct == b""  # the blind index, not the number

    # Someone registered on Telegram gives that number as theirs: the STOP still holds for it.
    chat = Chat(beacon, 582917071)
    await chat.register()
    assert await chat.share_contact(PHONE.removeprefix("+"), chat.id)
    headers = await token(beacon)
    created = await beacon.client.post("/api/v1/broadcasts", json={"text": {"en": "Flood warning"}}, headers=headers)
    assert created.status == 201, await created.text()
    await wait_counts(beacon, headers, (await created.json())["id"], recipients=1, sent=1)
    await settle(beacon)
    assert any("Flood warning" in text for text in chat.texts)
    assert beacon.twilio is not None
    assert not any("Flood warning" in message.body for message in beacon.twilio.sent_to(PHONE))
