"""Outreach sources end to end: the admin API, QR codes that decode to the link, JOIN <code> attribution,
a Telegram deep link's /start <code>, and registrations counted per source with suppression."""

from __future__ import annotations

import io
from typing import Any

import zxingcpp
from PIL import Image
from sqlalchemy import select

from registry import schema
from tests.conftest import Running, StartBeacon
from tests.test_disclosure import recoverable
from tests.test_stats_api import as_table, bearer


async def make_source(run: Running, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await run.client.post("/api/v1/sources", json=body, headers=headers)
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def source_of(run: Running, address: str) -> int | None:
    async with run.beacon.db.read() as conn:
        rows = (await conn.execute(select(schema.registrants.c.source_id, schema.registrants.c.consented))).all()
    ids = {row.source_id for row in rows if row.consented}
    assert len(rows) >= 1
    return ids.pop() if len(ids) == 1 else None


async def test_admins_create_and_list_sources_others_may_not(start_beacon: StartBeacon) -> None:
    run = await start_beacon()
    admin = await bearer(run, "admin", "boss")
    created = await make_source(run, admin, name="Airport poster", code="air1", area="tripoli", language="ar")
    assert created["code"] == "AIR1"
    assert created["link"] == "https://beacon.example.org/join/AIR1"
    assert created["keyword"] == "JOIN AIR1"
    assert created["telegram_link"] is None  # Telegram is not configured
    listed = await (await run.client.get("/api/v1/sources", headers=admin)).json()
    assert [s["code"] for s in listed["items"]] == ["AIR1"]
    again = await run.client.post("/api/v1/sources", json={"name": "x", "code": "AIR1"}, headers=admin)
    assert again.status == 422 and "already used" in await again.text()
    bad_area = await run.client.post("/api/v1/sources", json={"name": "x", "code": "B2", "area": "atlantis"},
                                     headers=admin)
    assert bad_area.status == 422
    responder = await bearer(run, "responder", "r")
    assert (await run.client.get("/api/v1/sources", headers=responder)).status == 403
    assert (await run.client.post("/api/v1/sources", json={"name": "y", "code": "YY"},
                                  headers=responder)).status == 403
    assert (await run.client.get("/api/v1/sources")).status == 401
    async with run.beacon.db.read() as conn:
        actions = (await conn.execute(select(schema.audit_log.c.action, schema.audit_log.c.detail))).all()
    assert any(a.action == "source.created" and "AIR1" in a.detail for a in actions)


async def test_the_qr_code_decodes_to_the_short_link(start_beacon: StartBeacon) -> None:
    run = await start_beacon()
    admin = await bearer(run, "admin", "boss")
    created = await make_source(run, admin, name="Community centre", code="TCC")
    png = await run.client.get(f"/api/v1/sources/{created['id']}/qr.png", headers=admin)
    assert png.status == 200 and png.content_type == "image/png"
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(await png.read())))
    assert [d.text for d in decoded] == ["https://beacon.example.org/join/TCC"]
    svg = await run.client.get(f"/api/v1/sources/{created['id']}/qr.svg", headers=admin)
    assert svg.status == 200 and (await svg.text()).startswith("<svg")
    assert (await run.client.get("/api/v1/sources/999/qr.png", headers=admin)).status == 404


async def test_join_code_attributes_and_preselects_language_and_area(start_beacon: StartBeacon) -> None:
    run = await start_beacon()
    admin = await bearer(run, "admin", "boss")
    created = await make_source(run, admin, name="Misrata NGO", code="MIS", area="misrata", language="fr")
    replies = await run.simulate("+2348012000001", "join mis")
    assert replies[-1].startswith("1 Français")  # the source's language is offered first
    replies = await run.converse("+2348012000001", "1", "1")
    assert "1 Misrata" in replies[-1]  # and its area
    await run.converse("+2348012000001", "1")
    assert await source_of(run, "+2348012000001") == created["id"]


async def test_the_join_word_of_any_language_names_a_source(start_beacon: StartBeacon) -> None:
    run = await start_beacon()
    admin = await bearer(run, "admin", "boss")
    created = await make_source(run, admin, name="Souk", code="SOUK")
    await run.converse("+2348012000003", "تسجيل souk", "1", "1", "tripoli")
    assert await source_of(run, "+2348012000003") == created["id"]


async def test_an_unknown_code_is_just_join(start_beacon: StartBeacon) -> None:
    run = await start_beacon()
    await run.converse("+2348012000002", "JOIN NOPE", "1", "1", "tripoli")
    assert await source_of(run, "+2348012000002") is None


async def test_telegram_start_payload_attributes(start_beacon: StartBeacon) -> None:
    run = await start_beacon(telegram=True)
    admin = await bearer(run, "admin", "boss")
    created = await make_source(run, admin, name="Telegram poster", code="TG7", language="ar")
    assert created["telegram_link"] and created["telegram_link"].endswith("?start=TG7")
    update = {"update_id": 1, "message": {
        "message_id": 1, "date": 0, "text": "/start TG7",
        "chat": {"id": 4242, "type": "private"}, "from": {"id": 4242, "is_bot": False, "first_name": "A"}}}
    assert (await run.telegram_update(update)).status == 200
    await run.beacon.service.wait_idle()
    async with run.beacon.db.read() as conn:
        row = (await conn.execute(select(schema.registrants.c.source_id, schema.registrants.c.language))).one()
    assert row.source_id == created["id"] and row.language == "ar"


async def test_stats_by_source_are_suppressed(start_beacon: StartBeacon, database_url: str) -> None:
    run = await start_beacon(BEACON_MIN_CELL="3", BEACON_DATABASE_URL=database_url)
    admin = await bearer(run, "admin", "boss")
    await make_source(run, admin, name="Big", code="BIG")
    await make_source(run, admin, name="Small", code="SMALL")
    for n in range(5):
        await run.converse(f"+23480130000{n:02d}", "JOIN BIG", "1", "1", "tripoli")
    await run.converse("+2348013000099", "JOIN SMALL", "1", "1", "tripoli")
    for n in range(3):
        await run.converse(f"+23480140000{n:02d}", "JOIN", "1", "1", "tripoli")
    body = await (await run.client.get("/api/v1/stats?by=source", headers=admin)).json()
    cells = {c["source"]: c for c in body["cells"]}
    assert cells["BIG"]["count"] == 5 and not cells["BIG"]["suppressed"]
    assert cells["SMALL"]["suppressed"] and cells["SMALL"]["count"] is None
    truth = {("BIG",): 5, ("SMALL",): 1, ("unknown",): 3}
    assert recoverable(truth, as_table(body)) == []  # the same secondary suppression as every other dimension
