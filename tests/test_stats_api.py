"""/api/v1/stats, its CSV and GeoJSON exports and the situation report, end to end.

People register through the simulator; BEACON_MIN_CELL=3 keeps the population small.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from registry import schema, tokens
from registry.disclosure import ALL, Entry, Table
from registry.publication import ProtectedTables
from tests.conftest import Running, StartBeacon
from tests.test_disclosure import recoverable

# (area, nationality, gender number, age band number); tajoura is inside tripoli in the sample gazetteer
PEOPLE = [
    ("tripoli", "Nigeria", "1", "2"), ("tripoli", "Nigeria", "1", "2"), ("tripoli", "Nigeria", "2", "2"),
    ("tripoli", "Ghana", "2", "3"), ("tripoli", "Ghana", "1", "3"), ("tripoli", "Sudan", "2", "0"),
    ("tajoura", "Sudan", "1", "2"),
    ("misrata", "Nigeria", "2", "2"), ("misrata", "Nigeria", "2", "4"), ("misrata", "Ghana", "1", "2"),
    ("misrata", "Sudan", "0", "0"),
    ("benghazi", "Niger", "2", "3"),
]
GENDER = {"1": "female", "2": "male", "0": "unknown"}


def phone(n: int) -> str:
    return f"+23480200000{n:02d}"


async def register(beacon: Running) -> None:
    async def one(n: int, area: str, nationality: str, gender: str, age: str) -> None:
        await beacon.converse(phone(n), "JOIN", "1", "1", area, "0", nationality, gender, age, "0", "0")

    # A few at a time: the simulator answers each conversation in order, conversations in parallel.
    for start in range(0, len(PEOPLE), 4):
        await asyncio.gather(*(one(n, *PEOPLE[n]) for n in range(start, min(start + 4, len(PEOPLE)))))


async def bearer(beacon: Running, role: str, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {await tokens.create(beacon.beacon.db, role, name)}"}


def as_table(body: dict[str, Any]) -> Table:
    """The JSON answer back as a disclosure table, for the brute-force checker."""
    dims = tuple(body["by"])

    def entry(item: dict[str, Any]) -> Entry:
        return Entry(tuple(item.get(d, ALL) for d in dims), item["count"], item["suppressed"])

    return Table(dims, body["min_cell"], tuple(entry(c) for c in body["cells"]),
                 tuple(entry(t) for t in body["totals"]), Entry((ALL,) * len(dims), body["total"]["count"],
                                                                 body["total"]["suppressed"]))


def truth(by: list[str], level: int = 0) -> dict[tuple[str, ...], int]:
    rolled = {"tajoura": "tripoli"} if level == 0 else {}
    counts: Counter[tuple[str, ...]] = Counter()
    for area, nationality, gender, _age in PEOPLE:
        values = {"area": rolled.get(area, area), "nationality": {"Nigeria": "NG", "Ghana": "GH", "Sudan": "SD",
                                                                  "Niger": "NE"}[nationality],
                  "gender": GENDER[gender]}
        counts[tuple(values[d] for d in by)] += 1
    return dict(counts)


async def get_json(beacon: Running, path: str, headers: dict[str, str], status: int = 200) -> Any:
    response = await beacon.client.get(path, headers=headers)
    assert response.status == status, await response.text()
    return await response.json()


@pytest.mark.slow
async def test_stats_exports_and_report(start_beacon: StartBeacon, database_url: str) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3", BEACON_DATABASE_URL=database_url)
    await register(beacon)
    analyst = await bearer(beacon, "analyst", "ana")

    # -- JSON: the contract's shape, suppression, and nothing recoverable --
    body = await get_json(beacon, "/api/v1/stats?by=area", analyst)
    assert body["by"] == ["area"] and body["min_cell"] == 3
    assert set(body) >= {"by", "min_cell", "cells", "total", "totals", "generated_at", "data_as_of"}
    cells = {c["area"]: c for c in body["cells"]}
    assert set(cells) == {"tripoli", "misrata", "benghazi"}
    assert cells["tripoli"] == {"area": "tripoli", "count": 7, "suppressed": False}
    assert cells["benghazi"] == {"area": "benghazi", "count": None, "suppressed": True}
    assert cells["misrata"]["suppressed"]  # else benghazi = total - the rest
    assert body["total"] == {"count": 12, "suppressed": False}
    assert recoverable(truth(["area"]), as_table(body)) == []

    fine = await get_json(beacon, "/api/v1/stats?by=area&level=1", analyst)
    assert {c["area"] for c in fine["cells"]} == {"tripoli", "tajoura", "misrata", "benghazi"}
    assert fine["level"] == 1

    two = await get_json(beacon, "/api/v1/stats?by=area,gender", analyst)
    assert two["by"] == ["area", "gender"]
    for cell in two["cells"]:
        assert set(cell) == {"area", "gender", "count", "suppressed"}
        assert cell["suppressed"] == (cell["count"] is None)
        if not cell["suppressed"]:
            assert cell["count"] == truth(["area", "gender"])[(cell["area"], cell["gender"])] >= 3
    assert {t.get("area") for t in two["totals"]} >= {"tripoli", "misrata", "benghazi"}
    assert recoverable(truth(["area", "gender"]), as_table(two)) == []

    channels = await get_json(beacon, "/api/v1/stats?by=channel", analyst)
    assert channels["cells"] == [{"channel": "simulator", "count": 12, "suppressed": False}]
    mixed = await get_json(beacon, "/api/v1/stats?by=age_band,channel,language", analyst)
    assert {c["age_band"] for c in mixed["cells"]} == {"18-29", "30-44", "45-59", "unknown"}
    assert sum(c["count"] or 0 for c in mixed["cells"]) <= 12 and mixed["total"]["count"] == 12

    three = await get_json(beacon, "/api/v1/stats?by=area,nationality,gender", analyst)
    assert recoverable(truth(["area", "nationality", "gender"]), as_table(three)) == []
    assert not any(c["count"] is not None and c["count"] < 3 for c in three["cells"] + three["totals"])

    # -- CSV: metadata lines, header, HXL hashtags, P-codes, empty suppressed cells --
    response = await beacon.client.get("/api/v1/stats.csv?by=area", headers=analyst)
    assert response.status == 200 and response.content_type == "text/csv"
    text = await response.text()
    lines = text.splitlines()
    meta = [line for line in lines if line.startswith("# ")]
    keys = {line[2:].split(":", 1)[0] for line in meta}
    assert {"produced_at", "suppression", "data_as_of", "min_cell"} <= keys
    rows = list(csv.reader(io.StringIO("\n".join(lines[len(meta):]))))
    assert rows[0] == ["area", "area_name", "area_pcode", "count"]
    assert rows[1] == ["#adm1+id", "#adm1+name", "#adm1+code", "#population+migrants+total"]
    by_area = {row[0]: row for row in rows[2:]}
    assert by_area["tripoli"] == ["tripoli", "Tripoli", "LY0106", "7"]
    assert by_area["benghazi"][2:] == ["LY0101", ""] and by_area["misrata"][3] == ""

    # -- GeoJSON: valid points with the same suppression --
    response = await beacon.client.get("/api/v1/stats.geojson?by=area", headers=analyst)
    assert response.status == 200
    geo = json.loads(await response.text())
    assert geo["type"] == "FeatureCollection" and {"produced_at", "suppression", "data_as_of"} <= set(geo["metadata"])
    features = {f["id"]: f for f in geo["features"]}
    assert set(features) == {"tripoli", "misrata", "benghazi"}
    for feature in geo["features"]:
        assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Point"
        lon, lat = feature["geometry"]["coordinates"]
        assert -180 <= lon <= 180 and -90 <= lat <= 90
    assert features["tripoli"]["geometry"]["coordinates"] == [13.1913, 32.8872]
    assert features["tripoli"]["properties"]["count"] == 7 and features["tripoli"]["properties"]["pcode"] == "LY0106"
    assert features["benghazi"]["properties"] | {"names": None} == {
        "area": "benghazi", "name": "Benghazi", "names": None, "pcode": "LY0101", "count": None, "suppressed": True}

    # -- a check-in broadcast, then the same by answer --
    responder = await bearer(beacon, "responder", "resp")
    created = await beacon.client.post("/api/v1/broadcasts", headers=responder, json={
        "text": {"en": "Flood warning: are you safe?"}, "audience": {"areas": ["tripoli"]}, "check_in": True})
    assert created.status == 201, await created.text()
    broadcast_id = (await created.json())["id"]
    for _ in range(200):
        summary = await get_json(beacon, f"/api/v1/broadcasts/{broadcast_id}", responder)
        if summary["counts"]["sent"] == 7:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"broadcast not sent: {summary}")
    for n in range(4):
        await beacon.simulate(phone(n), "1")  # safe
    await beacon.simulate(phone(4), "2")  # needs help
    status = await get_json(beacon, f"/api/v1/stats?by=status&broadcast={broadcast_id}", analyst)
    answers = {c["status"]: c for c in status["cells"]}
    assert answers["safe"] == {"status": "safe", "count": 4, "suppressed": False}
    assert answers["need_help"]["suppressed"] and answers["no_reply"]["suppressed"]
    assert status["total"] == {"count": 7, "suppressed": False} and status["broadcast"] == broadcast_id
    response = await beacon.client.get(f"/api/v1/stats.csv?by=area,status&broadcast={broadcast_id}",
                                       headers=analyst)
    rows = [r for r in csv.reader(io.StringIO(await response.text())) if not r[0].startswith("# ")]
    assert rows[0] == ["area", "area_name", "area_pcode", "total", "safe", "need_help", "no_reply"]
    assert rows[1][3:] == ["#population+migrants+total", "#affected+safe", "#affected+need_help",
                           "#affected+no_reply"]
    assert rows[2][:5] == ["tripoli", "Tripoli", "LY0106", "7", "4"]

    # -- the situation report: self-contained, the numbers, the same suppression --
    response = await beacon.client.get("/api/v1/reports/situation", headers=analyst)
    assert response.status == 200 and response.content_type == "text/html"
    page = await response.text()
    assert "<svg" in page and "@media print" in page
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<(script|link|img|iframe)\b|\bsrc=|@import|url\(", page)
    assert 'id="total">12<' in page and ">7<" in page
    assert "withheld" in page and "fewer than 3" in page
    assert f"Check-in answers to broadcast {broadcast_id}" in page

    # -- every read audited with the caller and the query, and nothing about a person --
    async with beacon.beacon.db.read() as conn:
        entries = (await conn.execute(select(schema.audit_log).where(
            schema.audit_log.c.action == "stats.read").order_by(schema.audit_log.c.seq))).all()
    assert len(entries) == 11
    assert {e.actor for e in entries} == {"ana"}
    first = json.loads(entries[0].detail)
    assert first == {"path": "/api/v1/stats", "by": ["area"], "level": 0, "broadcast": None}
    for entry in entries:
        assert "+234" not in entry.detail and "tripoli" not in entry.detail


async def test_bad_queries_get_422_naming_the_field(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3")
    analyst = await bearer(beacon, "analyst", "ana")
    for path, field in (("/api/v1/stats?by=area,passport", "by"), ("/api/v1/stats?by=", "by"),
                        ("/api/v1/stats?by=area,area", "by"), ("/api/v1/stats?by=area&level=7", "level"),
                        ("/api/v1/stats?by=area&level=top", "level"), ("/api/v1/stats?by=status", "broadcast"),
                        ("/api/v1/stats?by=status&broadcast=999", "broadcast"),
                        ("/api/v1/stats?by=area&broadcast=x", "broadcast"),
                        ("/api/v1/stats.csv?by=nope", "by"), ("/api/v1/stats.geojson?by=gender", "by"),
                        ("/api/v1/reports/situation?level=-1", "level"),
                        ("/api/v1/reports/situation?broadcast=42", "broadcast")):
        body = await get_json(beacon, path, analyst, 422)
        assert body["error"] == "validation_error" and field in body["message"], (path, body)
        assert body["detail"][0]["field"] == field
    # nothing registered yet: an empty table, and no error
    empty = await get_json(beacon, "/api/v1/stats?by=area,language", analyst)
    assert empty["cells"] == [] and empty["total"] == {"count": 0, "suppressed": False}


async def test_analyst_sees_only_aggregates(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3")
    analyst = await bearer(beacon, "analyst", "ana")
    for method, path in (("GET", "/api/v1/cases"), ("GET", "/api/v1/broadcasts"), ("GET", "/api/v1/broadcasts/1"),
                         ("POST", "/api/v1/broadcasts"), ("POST", "/api/v1/broadcasts/preview"),
                         ("GET", "/api/v1/audit")):
        response = await beacon.client.request(method, path, headers=analyst, json={"text": {"en": "x"}})
        assert response.status == 403, (method, path, response.status)
    for path in ("/api/v1/stats", "/api/v1/stats.csv", "/api/v1/stats.geojson", "/api/v1/reports/situation"):
        assert (await beacon.client.get(path, headers=analyst)).status == 200
        assert (await beacon.client.get(path)).status == 401
        auditor = await bearer(beacon, "auditor", f"aud-{len(path)}")
        assert (await beacon.client.get(path, headers=auditor)).status == 403
    for role in ("responder", "admin"):
        assert (await beacon.client.get("/api/v1/stats", headers=await bearer(beacon, role, role))).status == 200


async def test_protected_tables_are_reused_only_for_identical_counts() -> None:
    tables = ProtectedTables(size=2)
    counts = {("tripoli",): 40, ("misrata",): 4, ("sabha",): 25}
    first = await tables.protect(counts, ("area",), 10)
    assert await tables.protect(dict(counts), ("area",), 10) is first
    changed = await tables.protect({**counts, ("misrata",): 12}, ("area",), 10)
    assert changed is not first and {e.key[0]: e.count for e in changed.cells}["misrata"] == 12
    assert await tables.protect(counts, ("area",), 5) is not first  # another threshold is another table
    assert await tables.protect(counts, ("area",), 10) is not first  # evicted: only 2 are kept
    assert [e.count for e in first.cells if e.key == ("misrata",)] == [None]
