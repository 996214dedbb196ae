"""Broadcasts and check-ins end to end: API in, simulator and channel doubles out."""

from __future__ import annotations

import asyncio
from typing import Any

from registry import tokens
from tests.conftest import Running, StartBeacon

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
    simulator = beacon.beacon.channels["simulator"]
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
