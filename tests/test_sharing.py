"""Sharing arrangements, partner tokens and special runs, end to end through the HTTP app.

BEACON_MIN_CELL=3 for the service; the arrangement asks for 5. People are written straight into the
registry (tests.seeding): 30 in Tripoli, 12 in Misrata, 4 in Benghazi.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest

from beacon import api_arrangements
from beacon.cli import parser
from registry import aggregates, tokens
from tests.conftest import Running, StartBeacon
from tests.seeding import seed_profiles
from tests.test_openapi import validate

TODAY = datetime.now(UTC).date()
GENDERS = ("female", "male")


async def seed(beacon: Running) -> None:
    people = ([{"area_id": "tripoli", "gender": GENDERS[n % 2]} for n in range(30)]
              + [{"area_id": "misrata", "gender": GENDERS[n % 2]} for n in range(12)]
              + [{"area_id": "benghazi", "gender": "female"} for _ in range(4)])
    await seed_profiles(beacon.beacon.db, beacon.beacon.keys, people)


async def bearer(beacon: Running, role: str, name: str, arrangement: int | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {await tokens.create(beacon.beacon.db, role, name, arrangement)}"}


def terms(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "partner": "UNHCR Libya", "contact": "data-sharing@partner.example", "purposes": ["planning", "response"],
        "dimensions": ["area", "gender"], "area_level": 0, "min_cell": 5, "formats": ["json", "csv", "hxl"],
        "frequency": "weekly", "starts_on": (TODAY - timedelta(days=10)).isoformat(),
        "ends_on": (TODAY + timedelta(days=30)).isoformat(), "legal_basis": "Data sharing agreement 2026-07"}
    body.update(changes)
    return body


async def record(beacon: Running, admin: dict[str, str], **changes: Any) -> int:
    response = await beacon.client.post("/api/v1/arrangements", json=terms(**changes), headers=admin)
    assert response.status == 201, await response.text()
    return int((await response.json())["id"])


async def audited(beacon: Running, auditor: dict[str, str], action: str) -> list[dict[str, Any]]:
    response = await beacon.client.get(f"/api/v1/audit?action={action}", headers=auditor)
    assert response.status == 200
    return [{**e, "detail": json.loads(e["detail"])} for e in (await response.json())["items"]]


async def test_partner_fetches_only_inside_its_arrangement(start_beacon: StartBeacon, database_url: str) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3", BEACON_DATABASE_URL=database_url)
    await seed(beacon)
    admin = await bearer(beacon, "admin", "adm")
    auditor = await bearer(beacon, "auditor", "aud")
    analyst = await bearer(beacon, "analyst", "ana")

    # -- recording: admin only, never below the service's minimum cell --
    assert (await beacon.client.post("/api/v1/arrangements", json=terms(), headers=analyst)).status == 403
    low = await beacon.client.post("/api/v1/arrangements", json=terms(min_cell=2), headers=admin)
    assert low.status == 422
    backwards = await beacon.client.post("/api/v1/arrangements", json=terms(ends_on=TODAY.isoformat(),
                                                                              starts_on=TODAY.isoformat()),
                                         headers=admin)
    assert backwards.status == 422
    current = await record(beacon, admin)
    expired = await record(beacon, admin, starts_on=(TODAY - timedelta(days=60)).isoformat(),
                           ends_on=TODAY.isoformat())
    future = await record(beacon, admin, starts_on=(TODAY + timedelta(days=1)).isoformat())

    # -- partner tokens are bound to one arrangement --
    with pytest.raises(tokens.TokenError, match="--arrangement"):
        await tokens.create(beacon.beacon.db, "partner", "nobody")
    with pytest.raises(tokens.TokenError, match="partner tokens only"):
        await tokens.create(beacon.beacon.db, "analyst", "bound", current)
    with pytest.raises(tokens.TokenError, match="no arrangement"):
        await tokens.create(beacon.beacon.db, "partner", "ghost", 999)
    assert parser().parse_args(["token", "create", "--role", "partner", "--name", "p",
                                "--arrangement", str(current)]).arrangement == current
    partner = await bearer(beacon, "partner", "unhcr", current)

    # -- inside: the arrangement's higher minimum cell applies, and the fetch is audited with its id --
    ok = await beacon.client.get("/api/v1/stats?by=area", headers=partner)
    assert ok.status == 200, await ok.text()
    body = await ok.json()
    assert body["min_cell"] == 5
    cells = {c["area"]: c for c in body["cells"]}
    assert cells["tripoli"]["count"] == 30 and cells["benghazi"]["suppressed"]
    assert (await (await beacon.client.get("/api/v1/stats?by=area", headers=analyst)).json())["cells"] == [
        {"area": "benghazi", "count": 4, "suppressed": False}, {"area": "misrata", "count": 12, "suppressed": False},
        {"area": "tripoli", "count": 30, "suppressed": False}]
    csv_ok = await beacon.client.get("/api/v1/stats.csv?by=area,gender", headers=partner)
    assert csv_ok.status == 200 and "# min_cell: 5" in await csv_ok.text()
    fetched = await audited(beacon, auditor, "arrangement.fetch")
    assert len(fetched) == 2 and {e["subject"] for e in fetched} == {str(current)}
    assert all(e["actor"] == "unhcr" and e["detail"]["arrangement"] == current for e in fetched)

    # -- outside: another dimension, a finer level, another format, another endpoint: 403, audited --
    for path in ("/api/v1/stats?by=nationality", "/api/v1/stats?by=area&broadcast=1", "/api/v1/stats?by=area&level=1",
                 "/api/v1/stats.geojson?by=area", "/api/v1/cases", "/api/v1/reports/situation"):
        refused = await beacon.client.get(path, headers=partner)
        assert refused.status == 403, path
    reasons = [e["detail"]["reason"] for e in await audited(beacon, auditor, "arrangement.refused")]
    assert sorted(reasons) == sorted(["dimension", "dimension", "area_level", "format", "endpoint", "endpoint"])

    # -- outside its dates: expired on its end date, not yet started --
    for arrangement, name in ((expired, "old"), (future, "new")):
        headers = await bearer(beacon, "partner", name, arrangement)
        assert (await beacon.client.get("/api/v1/stats?by=area", headers=headers)).status == 403
    refused = await audited(beacon, auditor, "arrangement.refused")
    dated = [e for e in refused if e["detail"]["reason"] == "not_in_force"]
    assert {e["subject"] for e in dated} == {str(expired), str(future)}

    # -- the register: auditors and admins, with use; not analysts nor partners --
    assert (await beacon.client.get("/api/v1/arrangements", headers=analyst)).status == 403
    assert (await beacon.client.get("/api/v1/arrangements", headers=partner)).status == 403
    register = await (await beacon.client.get("/api/v1/arrangements", headers=auditor)).json()
    document = await (await beacon.client.get("/api/v1/openapi.json")).json()
    validate(document, "/api/v1/arrangements", "get", 200, register)
    listed = {a["id"]: a for a in register["items"]}
    assert listed[current]["usage"] == {"fetches": 2, "refused": 7, "special_runs": 0}
    assert listed[current]["in_force"] and not listed[expired]["in_force"] and not listed[future]["in_force"]
    assert listed[expired]["usage"]["refused"] == 1 and listed[current]["legal_basis"].startswith("Data sharing")


async def test_special_run_needs_an_admin_approval(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3")
    await seed(beacon)
    admin = await bearer(beacon, "admin", "adm")
    auditor = await bearer(beacon, "auditor", "aud")
    current = await record(beacon, admin)
    other = await record(beacon, admin, partner="IOM")
    partner = await bearer(beacon, "partner", "unhcr", current)
    runs = f"/api/v1/arrangements/{current}/runs"

    # outside the arrangement: a dimension, a purpose, someone else's arrangement
    for path, body in ((runs, {"dimensions": ["nationality"], "purpose": "planning"}),
                       (runs, {"dimensions": ["area"], "purpose": "marketing"}),
                       (f"/api/v1/arrangements/{other}/runs", {"dimensions": ["area"], "purpose": "planning"})):
        assert (await beacon.client.post(path, json=body, headers=partner)).status == 403

    asked = await beacon.client.post(runs, json={"dimensions": ["area", "gender"], "purpose": "planning"},
                                     headers=partner)
    assert asked.status == 201, await asked.text()
    run = await asked.json()
    document = await (await beacon.client.get("/api/v1/openapi.json")).json()
    validate(document, runs, "post", 201, run)
    assert run["status"] == "requested" and run["arrangement"] == current
    result = f"{runs}/{run['id']}/result"
    assert (await beacon.client.get(result, headers=partner)).status == 409  # not run before approval
    assert (await beacon.client.patch(f"{runs}/{run['id']}", json={"decision": "approve"},
                                      headers=partner)).status == 403  # a partner cannot approve its own
    approved = await beacon.client.patch(f"{runs}/{run['id']}", json={"decision": "approve"}, headers=admin)
    assert approved.status == 200 and (await approved.json())["status"] == "ready"
    again = await beacon.client.patch(f"{runs}/{run['id']}", json={"decision": "reject"}, headers=admin)
    assert again.status == 409
    table = await (await beacon.client.get(result, headers=partner)).json()
    assert table["by"] == ["area", "gender"] and table["min_cell"] == 5
    assert all(c["count"] is None or c["count"] >= 5 for c in table["cells"])
    status = await (await beacon.client.get(f"{runs}/{run['id']}", headers=partner)).json()
    assert status["status"] == "ready" and status["decided_by"] == "adm"

    second = await (await beacon.client.post(runs, json={"dimensions": ["area"], "purpose": "response"},
                                             headers=partner)).json()
    rejected = await beacon.client.patch(f"{runs}/{second['id']}", json={"decision": "reject"}, headers=admin)
    assert (await rejected.json())["status"] == "rejected"
    assert (await beacon.client.get(f"{runs}/{second['id']}/result", headers=partner)).status == 409

    trail = [e["action"] for e in reversed((await (await beacon.client.get(
        "/api/v1/audit?subject=" + str(current), headers=auditor)).json())["items"])]
    assert trail.count("special_run.requested") == 2
    assert "special_run.approved" in trail and "special_run.rejected" in trail
    # dimension, purpose, another's arrangement, approving its own run
    assert trail.count("arrangement.refused") == 4 and trail.count("arrangement.fetch") == 1


def test_an_arrangement_may_name_every_stats_dimension() -> None:
    assert set(get_args(api_arrangements.Dimension)) == set(aggregates.DIMENSIONS)
