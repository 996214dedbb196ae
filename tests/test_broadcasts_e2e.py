"""Broadcasts and check-ins end to end: API in, simulator and channel doubles out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from registry import schema, tokens
from tests.conftest import Running, StartBeacon
from tests.helpers import eventually

PEOPLE = {"+2348010000001": "1", "+2348010000002": "2", "+2348010000003": "5"}  # en, fr, ar by menu number


async def register(beacon: Running, phone: str, language_number: str, area: str = "tripoli") -> None:
    await beacon.converse(phone, "JOIN", language_number, "1", area, "0", "0", "0", "0", "0", "0")


async def token(beacon: Running, role: str = "responder", name: str = "resp") -> dict[str, str]:
    secret = await tokens.create(beacon.beacon.db, role, name)
    return {"Authorization": f"Bearer {secret}"}


async def wait_counts(beacon: Running, headers: dict[str, str], broadcast_id: int, **expected: int) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    for _ in range(100):
        response = await beacon.client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=headers)
        counts = (await response.json())["counts"]
        if all(counts.get(k) == v for k, v in expected.items()):
            return counts
        await asyncio.sleep(0.05)
    raise AssertionError(f"counts {counts} never reached {expected}")


async def test_three_language_broadcast_reaches_everyone_once(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon()
    for phone, number in PEOPLE.items():
        await register(beacon, phone, number)
    await register(beacon, "+2348010000009", "1", area="benghazi")
    headers = await token(beacon)
    body = {"text": {"en": "Flood warning", "fr": "Alerte inondation", "ar": "تحذير من فيضان"},
            "audience": {"areas": ["tripoli"]}, "check_in": True, "remind_after_minutes": 60}
    preview = await beacon.client.post("/api/v1/broadcasts/preview", json=body, headers=headers)
    assert preview.status == 200
    assert (await preview.json())["recipients"] == 3
    created = await beacon.client.post("/api/v1/broadcasts", json=body, headers=headers)
    assert created.status == 201, await created.text()
    broadcast = await created.json()
    counts = await wait_counts(beacon, headers, broadcast["id"], recipients=3, sent=3)
    assert counts["no_reply"] == 3 and counts["failed"] == 0
    simulator = beacon.beacon.providers["simulator"]
    assert any("Alerte inondation" in m for m in simulator.sent["+2348010000002"])  # type: ignore[attr-defined]
    assert any("تحذير من فيضان" in m for m in simulator.sent["+2348010000003"])  # type: ignore[attr-defined]
    assert not any("Flood" in m for m in simulator.sent["+2348010000009"])  # type: ignore[attr-defined]


async def test_wrong_fields_get_422_naming_the_field(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon()
    headers = await token(beacon)
    for body, field in (({"text": {}}, "text"), ({"text": {"xx": "hi"}}, "text"),
                        ({"text": {"en": "hi"}, "audience": {"areas": ["atlantis"]}}, "audience.areas"),
                        ({"text": {"en": "hi"}, "remind_after_minutes": 0}, "remind_after_minutes")):
        response = await beacon.client.post("/api/v1/broadcasts", json=body, headers=headers)
        assert response.status == 422
        assert field in (await response.json())["message"]
    listed = await beacon.client.get("/api/v1/broadcasts", headers=headers)
    assert (await listed.json())["items"] == []


async def test_roles(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon()
    analyst = await token(beacon, "analyst", "ana")
    body = {"text": {"en": "hi"}}
    assert (await beacon.client.post("/api/v1/broadcasts", json=body)).status == 401
    assert (await beacon.client.post("/api/v1/broadcasts", json=body, headers=analyst)).status == 403
    assert (await beacon.client.get("/api/v1/audit", headers=analyst)).status == 403
    auditor = await token(beacon, "auditor", "aud")
    assert (await beacon.client.get("/api/v1/audit", headers=auditor)).status == 200
    assert (await beacon.client.get("/api/v1/cases", headers=auditor)).status == 403


@pytest.mark.slow
async def test_check_ins_cases_and_tallies(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon()
    for phone, number in PEOPLE.items():
        await register(beacon, phone, number)
    headers = await token(beacon)
    body = {"text": {"en": "Flood warning", "fr": "Alerte inondation", "ar": "تحذير من فيضان"},
            "audience": {"areas": ["tripoli"]}, "check_in": True}
    broadcast = await (await beacon.client.post("/api/v1/broadcasts", json=body, headers=headers)).json()
    await wait_counts(beacon, headers, broadcast["id"], sent=3)
    en, fr, ar = PEOPLE
    assert "safe" in " ".join(await beacon.simulate(en, "1"))
    help_reply = " ".join(await beacon.simulate(ar, "٢"))  # Arabic-Indic two: need help
    assert help_reply and "2" not in help_reply[:1]
    await beacon.simulate(ar, "2")  # kind: shelter
    await beacon.simulate(ar, "Roof collapsed, two children")
    assert await beacon.simulate(fr, "HELP")  # information only: not a check-in
    counts = await wait_counts(beacon, headers, broadcast["id"], safe=1, need_help=1)
    assert counts["no_reply"] == 1
    listed = await (await beacon.client.get("/api/v1/cases?status=open&area=tripoli", headers=headers)).json()
    assert len(listed["items"]) == 1
    case = listed["items"][0]
    assert case["category"] == "shelter" and case["details"] == "Roof collapsed, two children"
    simulator = beacon.beacon.providers["simulator"]
    before = len(simulator.sent[ar])  # type: ignore[attr-defined]
    patched = await beacon.client.patch(f"/api/v1/cases/{case['id']}", headers=headers,
                                        json={"status": "in_progress", "assignee": "resp", "note": "team sent"})
    assert patched.status == 200 and (await patched.json())["status"] == "in_progress"
    for _ in range(100):
        if len(simulator.sent[ar]) > before:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.05)
    assert simulator.sent[ar][-1] != simulator.sent[ar][before - 1]  # type: ignore[attr-defined]
    bad = await beacon.client.patch(f"/api/v1/cases/{case['id']}", headers=headers, json={"status": "done"})
    assert bad.status == 422
    audit = await (await beacon.client.get("/api/v1/audit?action=cases.read", headers=await token(
        beacon, "auditor", "aud"))).json()
    assert audit["items"] and audit["items"][0]["actor"] == "resp"


async def test_family_status_and_share_codes(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon()
    phone, relative = "+2348010000011", "+2348010000012"
    await beacon.converse(phone, "JOIN", "1", "1", "tripoli", "Amina", "0", "0", "0", "0", relative, "1", "1")
    simulator = beacon.beacon.providers["simulator"]
    await beacon.simulate(phone, "SAFE")
    for _ in range(100):
        if simulator.sent.get(relative):  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.05)
    told = simulator.sent[relative][-1]  # type: ignore[attr-defined]
    assert "Amina" in told and "safe" in told and "Tripoli" not in told
    code_reply = " ".join(await beacon.simulate(phone, "CODE"))
    code = next(word.strip(".") for word in code_reply.split() if len(word.strip(".")) == 8 and word.isupper())
    stranger = "+2348010000013"
    looked = " ".join(await beacon.simulate(stranger, f"STATUS {code}"))
    assert "Amina" in looked and "safe" in looked
    for _ in range(5):
        assert "not valid" in " ".join(await beacon.simulate(stranger, "STATUS AAAAAAAA"))
    assert "Too many" in " ".join(await beacon.simulate(stranger, f"STATUS {code}"))
    await beacon.simulate(phone, "CODE OFF")
    assert "not valid" in " ".join(await beacon.simulate("+2348010000014", f"STATUS {code}"))


async def test_reminders_go_to_the_other_channel_once_per_round(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(BEACON_MAX_REMINDERS="2")
    phone = "+2348010000021"
    await register(beacon, phone, "1")
    headers = await token(beacon)
    body = {"text": {"en": "Storm"}, "check_in": True, "remind_after_minutes": 30}
    broadcast = await (await beacon.client.post("/api/v1/broadcasts", json=body, headers=headers)).json()
    await wait_counts(beacon, headers, broadcast["id"], sent=1)
    runner = beacon.beacon.runner
    assert await runner.send_reminders() == 0  # not due yet
    rc = schema.recipients.c
    async with beacon.beacon.db.write() as conn:
        await conn.execute(update(schema.recipients).where(rc.broadcast_id == broadcast["id"])
                           .values(last_sent_at=datetime.now(UTC) - timedelta(minutes=31)))
    assert await runner.send_reminders() == 1
    assert await runner.send_reminders() == 0  # the clock restarted with the reminder
    simulator = beacon.beacon.providers["simulator"]
    for _ in range(100):
        if "Reminder" in simulator.sent[phone][-1]:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.05)
    assert "Reminder" in simulator.sent[phone][-1]  # type: ignore[attr-defined]
    await beacon.simulate(phone, "1")
    async with beacon.beacon.db.write() as conn:
        await conn.execute(update(schema.recipients).where(rc.broadcast_id == broadcast["id"])
                           .values(last_sent_at=datetime.now(UTC) - timedelta(minutes=31)))
    assert await runner.send_reminders() == 0  # answered: no more reminders


@pytest.mark.slow
async def test_scheduled_broadcast_survives_a_restart(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon()
    phone = "+2348010000031"
    await register(beacon, phone, "1")
    headers = await token(beacon)
    send_at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    created = await beacon.client.post("/api/v1/broadcasts", headers=headers,
                                       json={"text": {"en": "Curfew tonight"}, "send_at": send_at})
    broadcast = await created.json()
    assert broadcast["status"] == "scheduled" and broadcast["counts"]["recipients"] == 0
    await beacon.client.close()  # the process goes away before the time comes
    await eventually(lambda: datetime.now(UTC) > datetime.fromisoformat(send_at), 5, "the time to send")
    again = await start_beacon(BEACON_DATABASE_URL=beacon.settings.database_url, BEACON_KEYS=beacon.settings.keys)
    counts = await wait_counts(again, headers, broadcast["id"], recipients=1, sent=1)
    assert counts["failed"] == 0
    simulator = again.beacon.providers["simulator"]
    assert any("Curfew tonight" in m for m in simulator.sent[phone])  # type: ignore[attr-defined]


async def test_cancel_stops_what_has_not_left(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon()
    await register(beacon, "+2348010000041", "1")
    headers = await token(beacon)
    send_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    broadcast = await (await beacon.client.post("/api/v1/broadcasts", headers=headers,
                                                json={"text": {"en": "Later"}, "send_at": send_at})).json()
    cancelled = await beacon.client.post(f"/api/v1/broadcasts/{broadcast['id']}/cancel", headers=headers)
    assert (await cancelled.json())["status"] == "cancelled"
    assert await beacon.beacon.runner.run_due() == 0
    missing = await beacon.client.post("/api/v1/broadcasts/999/cancel", headers=headers)
    assert missing.status == 404


async def test_audit_log_filters(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon()
    for phone, number in PEOPLE.items():
        await register(beacon, phone, number)
    responder = await token(beacon)
    auditor = await token(beacon, "auditor", "aud")
    await beacon.client.get("/api/v1/cases", headers=responder)

    async def entries(query: str) -> list[dict[str, Any]]:
        response = await beacon.client.get(f"/api/v1/audit{query}", headers=auditor)
        assert response.status == 200, await response.text()
        return list((await response.json())["items"])

    everything = await entries("")
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) >= 5
    assert {e["action"] for e in await entries("?action=cases.read")} == {"cases.read"}
    assert {e["actor"] for e in await entries("?actor=resp")} == {"resp"}
    middle = seqs[len(seqs) // 2]
    assert [e["seq"] for e in await entries(f"?after={middle}")] == [s for s in seqs if s > middle]
    assert [e["seq"] for e in await entries(f"?before={middle}&limit=2")] == [s for s in seqs if s < middle][:2]
    latest = everything[0]["at"]
    assert [e["seq"] for e in await entries(f"?since={latest.replace('+', '%2B')}")][-1] <= everything[0]["seq"]
    assert await entries("?until=2000-01-01T00:00:00%2B00:00") == []
    for bad in ("?limit=0", "?limit=many", "?since=yesterday", "?since=2026-01-01T00:00:00", "?colour=red"):
        response = await beacon.client.get(f"/api/v1/audit{bad}", headers=auditor)
        assert response.status == 422, bad
