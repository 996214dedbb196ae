"""Retention, nudges and subject-access exports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from campaigns import upkeep
from registry import schema
from tests.conftest import Running, StartBeacon
from tests.helpers import settle

PHONE = "+2348010000051"


async def registered(beacon: Running, phone: str = PHONE) -> int:
    await beacon.converse(phone, "JOIN", "1", "1", "tripoli", "Amina", "0", "0", "0", "0", "0")
    async with beacon.beacon.db.read() as conn:
        return int((await conn.execute(select(func.max(schema.registrants.c.id)))).scalar_one())


async def age(beacon: Running, registrant_id: int, days: int) -> None:
    past = datetime.now(UTC) - timedelta(days=days)
    r, i = schema.registrants.c, schema.inbound.c
    async with beacon.beacon.db.write() as conn:
        await conn.execute(update(schema.registrants).where(r.id == registrant_id).values(confirmed_at=past))
        await conn.execute(update(schema.inbound).where(i.registrant_id == registrant_id).values(received_at=past))


async def test_retention_warns_then_erases(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(BEACON_RETENTION_MONTHS="24")
    rid = await registered(beacon)
    policy = beacon.settings.retention_policy()
    await age(beacon, rid, 24 * 30 - 10)  # ten days before expiry: warned once
    report = await upkeep.run_retention(beacon.beacon.db, beacon.beacon.keys, policy, "en")
    assert report.warnings_due == [rid] and report.profiles_erased == 0
    assert report.inbound_bodies > 0  # the messages are older than 90 days: their bodies are gone
    again = await upkeep.run_retention(beacon.beacon.db, beacon.beacon.keys, policy, "en")
    assert again.warnings_due == []
    await age(beacon, rid, 24 * 30 + 1)
    report = await upkeep.run_retention(beacon.beacon.db, beacon.beacon.keys, policy, "en")
    assert report.profiles_erased == 1
    async with beacon.beacon.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(schema.registrants))).scalar_one() == 0
        runs = (await conn.execute(select(schema.audit_log.c.detail).where(
            schema.audit_log.c.action == "retention.run"))).scalars().all()
    assert len(runs) == 3 and json.loads(runs[-1])["profiles_erased"] == 1
    assert PHONE not in " ".join(runs) and "Amina" not in " ".join(runs)


async def test_confirmed_details_restart_the_clock(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon()
    rid = await registered(beacon)
    await age(beacon, rid, 200)
    assert await upkeep.send_nudges(beacon.beacon.db, beacon.beacon.keys, 180, "en") == 1
    assert await upkeep.send_nudges(beacon.beacon.db, beacon.beacon.keys, 180, "en") == 0
    assert "confirmed" in " ".join(await beacon.simulate(PHONE, "YES"))
    async with beacon.beacon.db.read() as conn:
        confirmed = (await conn.execute(select(schema.registrants.c.confirmed_at))).scalar_one()
    assert confirmed.replace(tzinfo=UTC) > datetime.now(UTC) - timedelta(minutes=1)


@pytest.mark.slow
async def test_export_subject_is_complete_and_audited(start_beacon: StartBeacon, tmp_path: Path) -> None:
    beacon = await start_beacon(twilio=True)  # access requests name a real phone number: register by SMS
    for text in ("JOIN", "1", "1", "tripoli", "Amina", "0", "0", "0", "0", "0"):
        assert (await beacon.twilio_inbound(PHONE, text)).status == 200
        await settle(beacon)
    await beacon.client.close()
    env = {**os.environ, "BEACON_DATABASE_URL": beacon.settings.database_url, "BEACON_KEYS": beacon.settings.keys or "",
           "BEACON_LOG_FORMAT": "json"}
    script = str(Path(sys.executable).parent / "beacon")
    done = subprocess.run([script, "export-subject", "--phone", PHONE, "--actor", "dpo"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["registrant"]["first_name"] == "Amina" and data["registrant"]["area_id"] == "tripoli"
    assert data["identities"][0]["address"] == PHONE
    assert [m["text"] for m in data["messages_received"]][:2] == ["JOIN", "1"]
    assert data["consents"] and data["messages_sent"]
    verify = subprocess.run([script, "audit", "verify"], env=env, capture_output=True, text=True, timeout=60,
                            cwd=tmp_path)
    assert verify.returncode == 0
    missing = subprocess.run([script, "export-subject", "--phone", "+2348019999999"], env=env,
                             capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines()[-1] == "beacon: error: no one is registered with that address"
