"""Ending an arrangement early: by PATCH or the console's End-now button; the partner's token stops at once."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any, get_args

import pytest

from beacon import api_arrangements
from registry import arrangements, shared_tables, users
from tests.conftest import StartBeacon
from tests.seeding import seed_profiles
from tests.test_console import HTTP, PASSWORD, sign_in
from tests.test_openapi import validate
from tests.test_sharing import TODAY, audited, bearer, record, seed, terms


async def test_an_admin_ends_an_arrangement_early(start_beacon: StartBeacon, database_url: str) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3", BEACON_DATABASE_URL=database_url)
    await seed(beacon)
    admin = await bearer(beacon, "admin", "adm")
    auditor = await bearer(beacon, "auditor", "aud")
    analyst = await bearer(beacon, "analyst", "ana")
    current = await record(beacon, admin)
    later = await record(beacon, admin, partner="IOM")
    partner = await bearer(beacon, "partner", "unhcr", current)
    other = await bearer(beacon, "partner", "iom", later)
    document = await (await beacon.client.get("/api/v1/openapi.json")).json()
    path = f"/api/v1/arrangements/{current}"
    assert (await beacon.client.get("/api/v1/stats?by=area", headers=partner)).status == 200

    # -- refused: other roles, bad bodies, a later end, a past one --
    for headers in (analyst, auditor, partner):
        assert (await beacon.client.patch(path, json={"reason": "x"}, headers=headers)).status == 403
    broken = await beacon.client.patch(path, data=b"{not json", headers=admin)
    assert broken.status == 422 and (await broken.json())["error"] == "invalid_json"
    for body in ({}, {"reason": ""}, {"reason": "x", "end_now": True}, {"reason": "x", "ends_on": "soon"}):
        response = await beacon.client.patch(path, json=body, headers=admin)
        assert response.status == 422, body
        validate(document, path, "patch", 422, await response.json())
    for day in (TODAY + timedelta(days=30), TODAY + timedelta(days=60), TODAY - timedelta(days=1)):
        wider = await beacon.client.patch(path, json={"ends_on": day.isoformat(), "reason": "x"}, headers=admin)
        assert wider.status == 422 and (await wider.json())["detail"][0]["field"] == "ends_on"
    assert (await beacon.client.patch("/api/v1/arrangements/999", json={"reason": "x"}, headers=admin)).status == 404

    # -- a later end date, still before the agreed one: the token works until then --
    sooner = await beacon.client.patch(f"/api/v1/arrangements/{later}", headers=admin, json={
        "ends_on": (TODAY + timedelta(days=3)).isoformat(), "reason": "the project closes"})
    assert sooner.status == 200, await sooner.text()
    assert (await sooner.json())["ends_on"] == (TODAY + timedelta(days=3)).isoformat()
    assert (await beacon.client.get("/api/v1/stats?by=area", headers=other)).status == 200

    # -- ended now: the same token is refused at once, and the refusal is audited with the arrangement --
    ended = await beacon.client.patch(path, json={"reason": "  the partner breached the purposes  "}, headers=admin)
    assert ended.status == 200, await ended.text()
    body = await ended.json()
    validate(document, path, "patch", 200, body)
    assert body["ends_on"] == TODAY.isoformat()
    assert body["ended_early"]["reason"] == "the partner breached the purposes"
    refused = await beacon.client.get("/api/v1/stats?by=area", headers=partner)
    assert refused.status == 403 and "ended the arrangement early" in (await refused.json())["message"]
    runs = await beacon.client.post(f"{path}/runs", json={"dimensions": ["area"], "purpose": "planning"},
                                    headers=partner)
    assert runs.status == 403
    reasons = [(e["subject"], e["detail"]["reason"]) for e in await audited(beacon, auditor, "arrangement.refused")]
    assert reasons.count((str(current), "ended_early")) == 2

    # -- an ended arrangement cannot be changed again --
    again = await beacon.client.patch(path, json={"reason": "twice"}, headers=admin)
    assert again.status == 409
    validate(document, path, "patch", 409, await again.json())

    # -- the register: ended early, when, by whom, why, and the end date first agreed --
    register = await (await beacon.client.get("/api/v1/arrangements", headers=auditor)).json()
    validate(document, "/api/v1/arrangements", "get", 200, register)
    listed = {a["id"]: a for a in register["items"]}
    ending = listed[current]["ended_early"]
    assert not listed[current]["in_force"] and listed[current]["ends_on"] == TODAY.isoformat()
    assert ending["by"] == "adm" and ending["reason"] == "the partner breached the purposes"
    assert ending["ends_on"] == TODAY.isoformat() and ending["agreed_until"] == (TODAY + timedelta(days=30)).isoformat()
    assert listed[later]["in_force"] and listed[later]["ended_early"]["reason"] == "the project closes"
    trail = await audited(beacon, auditor, "arrangement.ended")
    assert {(e["subject"], e["actor"]) for e in trail} == {(str(current), "adm"), (str(later), "adm")}
    assert {e["detail"]["reason"] for e in trail} == {"the partner breached the purposes", "the project closes"}


async def test_the_console_end_now_button(start_beacon: StartBeacon) -> None:
    run = await start_beacon(BEACON_MIN_CELL="3", **HTTP)
    await seed(run)
    await users.create_user(run.beacon.db, "root", "admin", PASSWORD)
    await users.create_user(run.beacon.db, "audra", "auditor", PASSWORD)
    admin = await bearer(run, "admin", "adm")
    current = await record(run, admin)
    partner = await bearer(run, "partner", "unhcr", current)
    action = f"/console/arrangements/{current}/end"

    csrf = await sign_in(run, "audra")
    assert action not in await (await run.client.get("/console/arrangements")).text()  # auditors read only
    assert (await run.client.post(action, data={"reason": "x", "csrf": csrf}, allow_redirects=False)).status == 403

    run.client.session.cookie_jar.clear()
    csrf = await sign_in(run, "root")
    page = await (await run.client.get("/console/arrangements")).text()
    assert action in page and "End now" in page and "data-confirm" in page
    forged = await run.client.post(action, data={"reason": "no token"}, allow_redirects=False)
    assert forged.status in (400, 403)
    assert (await run.client.get("/api/v1/stats?by=area", headers=partner)).status == 200
    blank = await run.client.post(action, data={"reason": " ", "csrf": csrf}, allow_redirects=False)
    assert blank.status == 422 and "Give a reason" in await blank.text()
    done = await run.client.post(action, data={"reason": "funding ended", "csrf": csrf}, allow_redirects=False)
    assert done.status == 303
    assert (await run.client.get("/api/v1/stats?by=area", headers=partner)).status == 403
    page = await (await run.client.get("/console/arrangements")).text()
    assert "funding ended" in page and "Ended early on" in page and action not in page
    twice = await run.client.post(action, data={"reason": "again", "csrf": csrf}, allow_redirects=False)
    assert twice.status == 409
    trail = await (await run.client.get("/api/v1/audit?action=arrangement.ended",
                                        headers=await bearer(run, "auditor", "aud"))).json()
    assert [e["actor"] for e in trail["items"]] == ["user:root"]


# -- the update frequency ----------------------------------------------------------------------------------

def test_update_periods_are_utc_calendar_periods() -> None:
    moment = datetime(2026, 12, 5, 13, 45, 10, tzinfo=UTC)  # a Saturday
    assert shared_tables.period("hourly", moment) == (datetime(2026, 12, 5, 13, tzinfo=UTC),
                                                      datetime(2026, 12, 5, 14, tzinfo=UTC))
    assert shared_tables.period("daily", moment) == (datetime(2026, 12, 5, tzinfo=UTC),
                                                     datetime(2026, 12, 6, tzinfo=UTC))
    assert shared_tables.period("weekly", moment) == (datetime(2026, 11, 30, tzinfo=UTC),
                                                      datetime(2026, 12, 7, tzinfo=UTC))
    assert shared_tables.period("monthly", moment) == (datetime(2026, 12, 1, tzinfo=UTC),
                                                       datetime(2027, 1, 1, tzinfo=UTC))
    assert shared_tables.period("every now and then", moment) == shared_tables.period("daily", moment)
    assert set(get_args(api_arrangements.Frequency)) == set(shared_tables.FREQUENCIES)


async def test_a_partner_gets_the_table_of_the_current_update_period(
        start_beacon: StartBeacon, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3", BEACON_DATABASE_URL=database_url)
    await seed(beacon)
    admin = await bearer(beacon, "admin", "adm")
    analyst = await bearer(beacon, "analyst", "ana")
    auditor = await bearer(beacon, "auditor", "aud")
    assert (await beacon.client.post("/api/v1/arrangements", json=terms(frequency="fortnightly"),
                                     headers=admin)).status == 422
    current = await record(beacon, admin, frequency="weekly")
    partner = await bearer(beacon, "partner", "unhcr", current)
    monday = datetime.combine(TODAY - timedelta(days=TODAY.weekday()), time(), UTC)
    clock = [monday + timedelta(days=2, hours=9)]  # a Wednesday morning; the clock the arrangements run on
    monkeypatch.setattr(arrangements, "now", lambda: clock[0])
    document = await (await beacon.client.get("/api/v1/openapi.json")).json()

    async def fetch(path: str = "/api/v1/stats?by=area", headers: dict[str, str] = partner) -> tuple[Any, Any]:
        response = await beacon.client.get(path, headers=headers)
        assert response.status == 200, await response.text()
        return response.headers, await response.json()

    def tripoli(body: dict[str, Any]) -> int:
        return next(c["count"] for c in body["cells"] if c["area"] == "tripoli")

    first_headers, first = await fetch()
    validate(document, "/api/v1/stats", "get", 200, first)
    assert tripoli(first) == 30
    assert first["update_frequency"] == "weekly" and first["updated_at"] == monday.isoformat()
    assert first["next_update_at"] == (monday + timedelta(days=7)).isoformat()
    assert first_headers["Data-As-Of"] == first["data_as_of"] and first["data_as_of"] is not None
    assert first_headers["Data-Updated"] == monday.isoformat()

    # -- new people register: live readers see them, the partner not before the next update --
    await seed_profiles(beacon.beacon.db, beacon.beacon.keys, [{"area_id": "tripoli", "gender": "male"}] * 5,
                        first_id=100)
    _, live = await fetch(headers=analyst)
    assert tripoli(live) == 35 and "update_frequency" not in live
    clock[0] += timedelta(days=3)  # Saturday: the same week
    again_headers, again = await fetch()
    assert again == first and again_headers["Data-As-Of"] == first_headers["Data-As-Of"]
    csv_text = await (await beacon.client.get("/api/v1/stats.csv?by=area", headers=partner)).text()
    assert f"# updated_at: {monday.isoformat()}" in csv_text and "# update_frequency: weekly" in csv_text
    assert f"# data_as_of: {first['data_as_of']}" in csv_text and "tripoli,Tripoli" in csv_text
    assert ",30\n" in csv_text.split("tripoli,")[1][:80]

    # -- a special run approved by an admin is the way to fresher figures within the period --
    runs = f"/api/v1/arrangements/{current}/runs"
    run = await (await beacon.client.post(runs, json={"dimensions": ["area"], "purpose": "planning"},
                                          headers=partner)).json()
    assert (await beacon.client.patch(f"{runs}/{run['id']}", json={"decision": "approve"},
                                      headers=admin)).status == 200
    special = await (await beacon.client.get(f"{runs}/{run['id']}/result", headers=partner)).json()
    assert tripoli(special) == 35

    # -- the next week's first fetch is counted again --
    clock[0] += timedelta(days=2)  # Monday of the next week
    _, next_week = await fetch()
    assert tripoli(next_week) == 35 and next_week["updated_at"] == (monday + timedelta(days=7)).isoformat()

    # -- the register counts the special run asked for, not the stored period tables; fetches are audited --
    register = await (await beacon.client.get("/api/v1/arrangements", headers=auditor)).json()
    usage = next(a["usage"] for a in register["items"] if a["id"] == current)
    assert usage == {"fetches": 5, "refused": 0, "special_runs": 1}
    fetched = [e["detail"] for e in await audited(beacon, auditor, arrangements.FETCHED)
               if e["detail"]["path"] in ("/api/v1/stats", "/api/v1/stats.csv")]
    assert sorted(e.get("table_of") for e in fetched) == sorted(
        [monday.isoformat()] * 3 + [(monday + timedelta(days=7)).isoformat()])  # which period's table was given
    assert (await beacon.client.get(f"{runs}/{run['id'] + 1}", headers=partner)).status == 404
