"""Scheduled reports: schedules of stats exports, their runs and the produced files, end to end.

People register through the simulator (BEACON_MIN_CELL=3, as in test_stats_api); the due-check is
the scheduler's own upkeep job, called directly instead of waiting for its minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from beacon.app import upkeep_jobs
from campaigns import reports
from registry import schema
from registry.db import Database
from tests.conftest import Running, StartBeacon
from tests.test_cli import beacon as command
from tests.test_openapi import validate
from tests.test_stats_api import bearer, register

SCHEDULES = "/api/v1/reports/schedules"
RUNS = "/api/v1/reports/runs"


async def due_check(beacon: Running) -> None:
    """Run the scheduler's report job once, as its minute tick would."""
    jobs = {job.__name__: (job, seconds) for job, seconds in upkeep_jobs(beacon.beacon)}
    job, seconds = jobs["reports_due"]
    assert seconds == 60
    await job()


async def call(beacon: Running, method: str, path: str, headers: dict[str, str], body: Any = None,
               status: int = 200, document: dict[str, Any] | None = None) -> Any:
    response = await beacon.client.request(method, path, json=body, headers=headers)
    assert response.status == status, (method, path, response.status, await response.text())
    if status == 204:
        return None
    found = await response.json()
    if document is not None:
        validate(document, path.split("?")[0], method.lower(), status, found)
    return found


async def run_count(db: Database, schedule_id: int | None = None) -> int:
    r = schema.report_runs.c
    query = select(func.count()).select_from(schema.report_runs)
    if schedule_id is not None:
        query = query.where(r.schedule_id == schedule_id)
    async with db.read() as conn:
        return int((await conn.execute(query)).scalar_one())


def without(text: str, pattern: str) -> str:
    return re.sub(pattern, "", text)


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.mark.slow
async def test_scheduled_exports_equal_the_live_ones(start_beacon: StartBeacon, database_url: str) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3", BEACON_DATABASE_URL=database_url)
    await register(beacon)
    document = await (await beacon.client.get("/api/v1/openapi.json")).json()
    admin = await bearer(beacon, "admin", "root")
    analyst = await bearer(beacon, "analyst", "ana")

    # -- an admin schedules a daily CSV of people by area --
    before = datetime.now(UTC)
    schedule = await call(beacon, "POST", SCHEDULES, admin, {"name": "Daily areas", "format": "csv", "by": ["area"],
                                                             "interval": "daily"}, 201, document)
    assert schedule | {"id": 0, "next_run_at": "", "created_at": "", "updated_at": ""} == {
        "id": 0, "name": "Daily areas", "format": "csv", "by": ["area"], "level": 0, "broadcast": None,
        "every_hours": 24, "interval": "daily", "next_run_at": "", "paused": False, "created_by": "root",
        "created_at": "", "updated_at": "", "last_run": None}
    period = when(schedule["next_run_at"])
    assert before <= period <= datetime.now(UTC)  # first run: right away
    assert await call(beacon, "GET", f"{RUNS}?schedule={schedule['id']}", analyst) == {"items": []}

    # -- the scheduler's check produces it, and moves the schedule on by a day --
    await due_check(beacon)
    runs = (await call(beacon, "GET", f"{RUNS}?schedule={schedule['id']}", analyst, document=document))["items"]
    assert len(runs) == 1
    run = runs[0]
    assert run["status"] == "done" and run["trigger"] == "schedule" and run["requested_by"] == "scheduler"
    assert when(run["scheduled_for"]) == period and run["schedule_name"] == "Daily areas"
    assert run["content_type"] == "text/csv" and run["filename"].endswith(".csv") and run["error"] is None
    assert run == await call(beacon, "GET", f"{RUNS}/{run['id']}", analyst, document=document)
    moved = await call(beacon, "GET", f"{SCHEDULES}/{schedule['id']}", analyst, document=document)
    assert when(moved["next_run_at"]) == period + timedelta(days=1)
    assert moved["last_run"]["id"] == run["id"] and moved["last_run"]["status"] == "done"
    await due_check(beacon)  # not due again until tomorrow
    assert await run_count(beacon.beacon.db, schedule["id"]) == 1

    # -- the analyst downloads it: the live CSV byte for byte, apart from when it was produced --
    response = await beacon.client.get(run["content_url"], headers=analyst)
    assert response.status == 200 and response.content_type == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{run["filename"]}"'
    stored = await response.text()
    assert run["size"] == len(stored.encode())
    live = await (await beacon.client.get("/api/v1/stats.csv?by=area", headers=analyst)).text()
    produced = r"(?m)^# produced_at: .*\n"
    assert len(re.findall(produced, stored)) == 1
    assert without(stored, produced) == without(live, produced)
    rows = {line.split(",")[0]: line for line in stored.splitlines()}
    assert rows["tripoli"] == "tripoli,Tripoli,LY0106,7"
    assert rows["benghazi"] == "benghazi,Benghazi,LY0101,"  # 1 person: withheld
    assert rows["misrata"].endswith(",")  # else benghazi = total - the rest
    assert "# min_cell: 3" in stored and "#adm1+id" in stored

    # -- on demand, ad hoc: GeoJSON and JSON equal their live endpoints too --
    geo = await call(beacon, "POST", RUNS, admin, {"format": "geojson", "by": ["area"]}, 201, document)
    assert geo["status"] == "done" and geo["trigger"] == "on_demand" and geo["schedule_id"] is None
    response = await beacon.client.get(geo["content_url"], headers=analyst)
    assert response.content_type == "application/geo+json" and geo["filename"].endswith(".geojson")
    stored_geo = json.loads(await response.text())
    live_geo = await (await beacon.client.get("/api/v1/stats.geojson?by=area", headers=analyst)).json()
    for body in (stored_geo, live_geo):
        body["metadata"].pop("produced_at")
    assert stored_geo == live_geo
    table = await call(beacon, "POST", RUNS, admin, {"format": "json", "by": "area,gender"}, 201, document)
    stored_table = await (await beacon.client.get(table["content_url"], headers=analyst)).json()
    live_table = await call(beacon, "GET", "/api/v1/stats?by=area,gender", analyst)
    assert stored_table.pop("generated_at") and live_table.pop("generated_at")
    assert stored_table == live_table and stored_table["total"] == {"count": 12, "suppressed": False}

    # -- an on-demand run of the schedule belongs to it and leaves its clock alone --
    again = await call(beacon, "POST", RUNS, admin, {"schedule": schedule["id"]}, 201, document)
    assert again["schedule_id"] == schedule["id"] and again["trigger"] == "on_demand" and again["by"] == ["area"]
    listed = await call(beacon, "GET", f"{RUNS}?schedule={schedule['id']}", analyst)
    assert [r["id"] for r in listed["items"]] == [again["id"], run["id"]]
    assert (await call(beacon, "GET", f"{SCHEDULES}/{schedule['id']}", analyst))["next_run_at"] == moved["next_run_at"]
    everything = await call(beacon, "GET", RUNS, analyst, document=document)
    assert [r["id"] for r in everything["items"]] == [again["id"], table["id"], geo["id"], run["id"]]
    assert [r["id"] for r in (await call(beacon, "GET", f"{RUNS}?schedule=none", analyst))["items"]] == [
        table["id"], geo["id"]]
    assert [r["id"] for r in (await call(beacon, "GET", f"{RUNS}?limit=2&before={geo['id']}", analyst))[
        "items"]] == [run["id"]]
    assert [s["id"] for s in (await call(beacon, "GET", SCHEDULES, analyst, document=document))["items"]] == [
        schedule["id"]]

    # -- every write and download audited, by ids, with nothing about a person --
    async with beacon.beacon.db.read() as conn:
        entries = (await conn.execute(select(schema.audit_log).where(
            schema.audit_log.c.action.like("report.%")).order_by(schema.audit_log.c.seq))).all()
    actions = [(e.actor, e.action) for e in entries]
    assert actions[:2] == [("root", "report.schedule_created"), ("scheduler", "report.produced")]
    assert ("ana", "report.read") in actions and actions.count(("root", "report.produced")) == 3
    for entry in entries:
        assert "+234" not in entry.detail and "tripoli" not in entry.detail and "Tripoli" not in entry.detail
    assert json.loads(entries[1].detail)["run"] == run["id"]


@pytest.mark.slow
async def test_roles(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3")
    document = await (await beacon.client.get("/api/v1/openapi.json")).json()
    admin = await bearer(beacon, "admin", "root")
    analyst = await bearer(beacon, "analyst", "ana")
    schedule = await call(beacon, "POST", SCHEDULES, admin, {"name": "Weekly", "format": "json", "by": ["gender"],
                                                             "interval": "weekly"}, 201)
    assert schedule["every_hours"] == 24 * 7
    run = await call(beacon, "POST", RUNS, admin, {"schedule": schedule["id"]}, 201)
    body = {"name": "Mine", "format": "csv", "by": ["area"]}
    # analysts read, but never create, change, delete or run
    for method, path, payload in (("POST", SCHEDULES, body), ("PATCH", f"{SCHEDULES}/{schedule['id']}",
                                                               {"paused": True}),
                                  ("DELETE", f"{SCHEDULES}/{schedule['id']}", None), ("POST", RUNS, {"schedule": 1})):
        await call(beacon, method, path, analyst, payload, 403, document)
    reads = [SCHEDULES, f"{SCHEDULES}/{schedule['id']}", RUNS, f"{RUNS}/{run['id']}", f"{RUNS}/{run['id']}/content"]
    for path in reads:
        assert (await beacon.client.get(path, headers=analyst)).status == 200, path
        assert (await beacon.client.get(path, headers=admin)).status == 200, path
        assert (await beacon.client.get(path)).status == 401, path
        for role in ("responder", "auditor"):
            await call(beacon, "GET", path, await bearer(beacon, role, f"{role}-{len(path)}"), None, 403, document)
    assert await run_count(beacon.beacon.db) == 1
    async with beacon.beacon.db.read() as conn:
        count = (await conn.execute(select(func.count()).select_from(schema.report_schedules))).scalar_one()
    assert count == 1

    # every route mounted under /api/v1/reports is in the OpenAPI document
    for route in beacon.client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path and path.startswith("/api/v1/reports") and route.method != "HEAD":
            assert route.method.lower() in document["paths"][path], (route.method, path)


async def test_pause_resume_rename_delete(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3")
    document = await (await beacon.client.get("/api/v1/openapi.json")).json()
    admin = await bearer(beacon, "admin", "root")
    analyst = await bearer(beacon, "analyst", "ana")
    db, gazetteer, tables = beacon.beacon.db, beacon.beacon.gazetteer, beacon.beacon.tables
    start = (datetime.now(UTC) - timedelta(minutes=30)).replace(microsecond=0)
    schedule = await call(beacon, "POST", SCHEDULES, admin, {
        "name": "Hourly by language", "format": "csv", "by": ["language"], "every_hours": 1,
        "start_at": start.isoformat()}, 201, document)
    assert schedule["interval"] == "hourly" and when(schedule["next_run_at"]) == start
    path = f"{SCHEDULES}/{schedule['id']}"

    paused = await call(beacon, "PATCH", path, admin, {"paused": True}, 200, document)
    assert paused["paused"] is True
    await due_check(beacon)
    assert await reports.run_due(db, gazetteer, tables, 3, now=datetime.now(UTC) + timedelta(days=2)) == []
    assert await run_count(db, schedule["id"]) == 0  # paused: nothing produced, however late
    on_demand = await call(beacon, "POST", RUNS, admin, {"schedule": schedule["id"]}, 201)
    assert on_demand["status"] == "done"  # a paused schedule still runs on demand

    # resuming does not catch up the paused period: the next slot on the hour grid after now
    resumed = await call(beacon, "PATCH", path, admin, {"paused": False, "name": "Languages"}, 200, document)
    assert resumed["paused"] is False and resumed["name"] == "Languages"
    next_run = when(resumed["next_run_at"])
    assert datetime.now(UTC) < next_run <= datetime.now(UTC) + timedelta(hours=1)
    assert (next_run - start) % timedelta(hours=1) == timedelta(0)
    await due_check(beacon)
    assert await run_count(db, schedule["id"]) == 1
    produced = await reports.run_due(db, gazetteer, tables, 3, now=next_run + timedelta(minutes=1))
    assert len(produced) == 1
    runs = (await call(beacon, "GET", f"{RUNS}?schedule={schedule['id']}&status=done", analyst))["items"]
    assert [r["trigger"] for r in runs] == ["schedule", "on_demand"] and runs[0]["schedule_name"] == "Languages"
    assert when(runs[0]["scheduled_for"]) == next_run and runs[0]["filename"].startswith("beacon-languages-run")

    # re-timing: every 6 hours from a given moment
    later = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    retimed = await call(beacon, "PATCH", path, admin, {"every_hours": 6, "next_run_at": later.isoformat()}, 200)
    assert retimed["every_hours"] == 6 and retimed["interval"] is None and when(retimed["next_run_at"]) == later

    # deleted: gone from the schedules, never produced again; its runs stay readable
    await call(beacon, "DELETE", path, admin, None, 204)
    await call(beacon, "GET", path, analyst, None, 404, document)
    await call(beacon, "DELETE", path, admin, None, 404, document)
    await call(beacon, "PATCH", path, admin, {"paused": True}, 404, document)
    await call(beacon, "POST", RUNS, admin, {"schedule": schedule["id"]}, 404, document)
    assert (await call(beacon, "GET", SCHEDULES, analyst))["items"] == []
    assert await reports.run_due(db, gazetteer, tables, 3, now=later + timedelta(days=3)) == []
    kept = await call(beacon, "GET", f"{RUNS}?schedule={schedule['id']}", analyst)
    assert len(kept["items"]) == 2
    assert (await beacon.client.get(kept["items"][0]["content_url"], headers=analyst)).status == 200
    async with db.read() as conn:
        actions = (await conn.execute(select(schema.audit_log.c.action, schema.audit_log.c.detail).where(
            schema.audit_log.c.action.like("report.schedule_%")).order_by(schema.audit_log.c.seq))).all()
    assert [a.action for a in actions] == ["report.schedule_created", "report.schedule_changed",
                                           "report.schedule_changed", "report.schedule_changed",
                                           "report.schedule_deleted"]
    assert json.loads(actions[2].detail) == {"changed": ["name", "next_run_at", "paused"], "paused": False}


async def test_a_restart_neither_loses_nor_doubles_a_run(start_beacon: StartBeacon, database_url: str) -> None:
    first = await start_beacon(BEACON_MIN_CELL="3", BEACON_DATABASE_URL=database_url, worker=False)
    admin = await bearer(first, "admin", "root")
    analyst = await bearer(first, "analyst", "ana")
    schedule = await call(first, "POST", SCHEDULES, admin, {"name": "Daily", "format": "csv", "by": ["area"]}, 201)
    assert schedule["interval"] == "daily"  # the default
    period = when(schedule["next_run_at"])
    # The check claims the period, then the process dies before the file is written.
    claimed = await reports.claim_due(first.beacon.db)
    assert len(claimed) == 1
    pending = await call(first, "GET", f"{RUNS}/{claimed[0]}", analyst)
    assert pending["status"] == "running" and pending["content_url"] is None
    response = await first.client.get(f"{RUNS}/{claimed[0]}/content", headers=analyst)
    assert response.status == 409 and (await response.json())["error"] == "not_ready"
    await first.client.close()

    # A new process on the same database: the claim's lease still holds, so it waits ...
    keys = first.settings.keys or ""
    second = await start_beacon(BEACON_MIN_CELL="3", BEACON_DATABASE_URL=database_url, BEACON_KEYS=keys)
    db, gazetteer, tables = second.beacon.db, second.beacon.gazetteer, second.beacon.tables
    await due_check(second)
    assert (await call(second, "GET", f"{RUNS}/{claimed[0]}", analyst))["status"] == "running"
    # ... and once the lease has run out, the interrupted run is produced: once, for its period.
    later = datetime.now(UTC) + reports.LEASE + timedelta(minutes=1)
    assert await reports.run_due(db, gazetteer, tables, 3, now=later) == [claimed[0]]
    runs = (await call(second, "GET", f"{RUNS}?schedule={schedule['id']}", analyst))["items"]
    assert len(runs) == 1 and runs[0]["status"] == "done" and when(runs[0]["scheduled_for"]) == period
    assert (await second.client.get(runs[0]["content_url"], headers=analyst)).status == 200
    await due_check(second)
    assert await run_count(db, schedule["id"]) == 1

    # Two workers (processes with their own connections) checking at once produce one run per period.
    other = Database(database_url)
    try:
        tomorrow = period + timedelta(days=1, minutes=1)
        results = await asyncio.gather(reports.run_due(db, gazetteer, tables, 3, now=tomorrow),
                                       reports.run_due(other, gazetteer, tables, 3, now=tomorrow),
                                       reports.run_due(db, gazetteer, tables, 3, now=tomorrow))
    finally:
        await other.close()
    assert sorted(len(r) for r in results) == [0, 0, 1]
    assert await run_count(db, schedule["id"]) == 2
    await second.client.close()

    # And a third start finds nothing due: the clock is in the database.
    third = await start_beacon(BEACON_MIN_CELL="3", BEACON_DATABASE_URL=database_url, BEACON_KEYS=keys)
    await due_check(third)
    runs = (await call(third, "GET", f"{RUNS}?schedule={schedule['id']}", analyst))["items"]
    assert [when(r["scheduled_for"]) for r in runs] == [period + timedelta(days=1), period]
    now_schedule = await call(third, "GET", f"{SCHEDULES}/{schedule['id']}", analyst)
    assert when(now_schedule["next_run_at"]) == period + timedelta(days=2)


async def test_an_interrupted_run_is_given_up_after_three_attempts(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3", worker=False)
    admin = await bearer(beacon, "admin", "root")
    await call(beacon, "POST", SCHEDULES, admin, {"name": "Daily", "format": "csv", "by": ["area"]}, 201)
    db = beacon.beacon.db
    (run_id,) = await reports.claim_due(db)
    moment = datetime.now(UTC)
    for _ in range(reports.MAX_ATTEMPTS - 1):  # crashes again and again after each claim
        moment += reports.LEASE + timedelta(seconds=1)
        assert await reports.claim_due(db, moment) == [run_id]
    moment += reports.LEASE + timedelta(seconds=1)
    assert await reports.claim_due(db, moment) == []
    found = await call(beacon, "GET", f"{RUNS}/{run_id}", await bearer(beacon, "analyst", "ana"))
    assert found["status"] == "failed" and "interrupted 3 times" in found["error"] and found["content_url"] is None


async def test_old_runs_are_pruned(start_beacon: StartBeacon, monkeypatch: Any) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3", worker=False)
    admin = await bearer(beacon, "admin", "root")
    analyst = await bearer(beacon, "analyst", "ana")
    monkeypatch.setattr(reports, "KEEP_RUNS", 3)
    schedule = await call(beacon, "POST", SCHEDULES, admin, {"name": "Daily", "format": "csv", "by": ["area"]}, 201)
    ids = [(await call(beacon, "POST", RUNS, admin, {"schedule": schedule["id"]}, 201))["id"] for _ in range(5)]
    ad_hoc = [(await call(beacon, "POST", RUNS, admin, {"format": "csv", "by": ["gender"]}, 201))["id"]
              for _ in range(2)]
    listed = (await call(beacon, "GET", f"{RUNS}?schedule={schedule['id']}", analyst))["items"]
    assert [r["id"] for r in listed] == ids[:-4:-1]  # the last three of the schedule's
    await call(beacon, "GET", f"{RUNS}/{ids[0]}/content", analyst, None, 404)
    # older than KEEP_DAYS: gone at the next production, whatever its schedule
    async with beacon.beacon.db.write() as conn:
        await conn.execute(update(schema.report_runs).where(schema.report_runs.c.id == ad_hoc[0]).values(
            started_at=datetime.now(UTC) - timedelta(days=reports.KEEP_DAYS + 1)))
    await call(beacon, "POST", RUNS, admin, {"schedule": schedule["id"]}, 201)
    remaining = {r["id"] for r in (await call(beacon, "GET", RUNS, analyst))["items"]}
    assert ad_hoc[0] not in remaining and ad_hoc[1] in remaining and len(remaining) == 4


async def test_bad_input_is_422_naming_the_field(start_beacon: StartBeacon) -> None:
    beacon = await start_beacon(BEACON_MIN_CELL="3", worker=False)
    document = await (await beacon.client.get("/api/v1/openapi.json")).json()
    admin = await bearer(beacon, "admin", "root")
    analyst = await bearer(beacon, "analyst", "ana")
    good = {"name": "Daily", "format": "csv", "by": ["area"]}
    schedule = await call(beacon, "POST", SCHEDULES, admin, good, 201)
    path = f"{SCHEDULES}/{schedule['id']}"
    cases: list[tuple[str, str, Any, str]] = [
        ("POST", SCHEDULES, {"format": "csv", "by": ["area"]}, "name"),
        ("POST", SCHEDULES, good | {"name": "   "}, "name"),
        ("POST", SCHEDULES, good | {"format": "pdf"}, "format"),
        ("POST", SCHEDULES, good | {"by": ["area", "passport"]}, "by"),
        ("POST", SCHEDULES, good | {"by": []}, "by"),
        ("POST", SCHEDULES, good | {"by": ["area", "area"]}, "by"),
        ("POST", SCHEDULES, good | {"format": "geojson", "by": ["gender"]}, "by"),
        ("POST", SCHEDULES, good | {"by": ["status"]}, "broadcast"),
        ("POST", SCHEDULES, good | {"broadcast": 999}, "broadcast"),
        ("POST", SCHEDULES, good | {"level": 7}, "level"),
        ("POST", SCHEDULES, good | {"interval": "monthly"}, "interval"),
        ("POST", SCHEDULES, good | {"every_hours": 0}, "every_hours"),
        ("POST", SCHEDULES, good | {"interval": "daily", "every_hours": 5}, "every_hours"),
        ("POST", SCHEDULES, good | {"start_at": "tomorrow"}, "start_at"),
        ("POST", SCHEDULES, good | {"colour": "red"}, "colour"),
        ("PATCH", path, {"paused": "maybe"}, "paused"),
        ("PATCH", path, {"format": "json"}, "format"),
        ("PATCH", path, {}, "body"),
        ("POST", RUNS, {}, "format"),
        ("POST", RUNS, {"format": "csv"}, "by"),
        ("POST", RUNS, {"format": "csv", "by": ["planet"]}, "by"),
        ("POST", RUNS, {"schedule": schedule["id"], "by": ["area"]}, "by"),
        ("POST", RUNS, {"schedule": "first"}, "schedule"),
        ("GET", f"{RUNS}?schedule=abc", None, "schedule"),
        ("GET", f"{RUNS}?limit=0", None, "limit"),
        ("GET", f"{RUNS}?status=lost", None, "status"),
    ]
    for method, target, body, field in cases:
        headers = analyst if method == "GET" else admin
        found = await call(beacon, method, target, headers, body, 422, document)
        assert found["error"] == "validation_error" and field in found["message"], (method, target, body, found)
        assert found["detail"][0]["field"] == field, (method, target, body, found)
    response = await beacon.client.post(SCHEDULES, data="not json", headers=admin)
    assert response.status == 422 and (await response.json())["error"] == "invalid_json"
    for method, target, headers in (("GET", f"{SCHEDULES}/999", analyst), ("GET", f"{SCHEDULES}/abc", analyst),
                                    ("PATCH", f"{SCHEDULES}/999", admin), ("DELETE", f"{SCHEDULES}/999", admin),
                                    ("GET", f"{RUNS}/999", analyst), ("GET", f"{RUNS}/999/content", analyst),
                                    ("GET", f"{RUNS}?schedule=999", analyst)):
        found = await call(beacon, method, target, headers, {"name": "x"}, 404, document)
        assert found["error"] == "not_found"
    await call(beacon, "POST", RUNS, admin, {"schedule": 999}, 404, document)
    # nothing was stored by the rejected requests
    assert await run_count(beacon.beacon.db) == 0
    assert [s["id"] for s in (await call(beacon, "GET", SCHEDULES, analyst))["items"]] == [schedule["id"]]


@pytest.mark.slow
async def test_cli_runs_due_schedules(start_beacon: StartBeacon, tmp_path: Path) -> None:
    running = await start_beacon(BEACON_MIN_CELL="3", worker=False)
    admin = await bearer(running, "admin", "root")
    analyst = await bearer(running, "analyst", "ana")
    schedule = await call(running, "POST", SCHEDULES, admin, {"name": "Daily", "format": "csv", "by": ["area"]}, 201)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEACON_", "TWILIO_", "TELEGRAM_"))}
    env.update({"BEACON_ENV": "development", "BEACON_DATABASE_URL": running.settings.database_url,
                "BEACON_KEYS": running.settings.keys or "", "BEACON_LOG_FORMAT": "json", "BEACON_MIN_CELL": "3",
                "BEACON_TEST_CWD": str(tmp_path)})
    first = await command(env, "reports", "run-due")
    assert first.code == 0 and first.out.startswith("produced 1 report run(s)"), first
    again = await command(env, "reports", "run-due")
    assert again.code == 0 and again.out.startswith("produced 0 report run(s)"), again
    runs = (await call(running, "GET", f"{RUNS}?schedule={schedule['id']}", analyst))["items"]
    assert [(r["status"], r["trigger"], r["requested_by"]) for r in runs] == [("done", "schedule", "scheduler")]
