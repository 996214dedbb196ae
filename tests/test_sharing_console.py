"""The console's Sharing page: admins record arrangements, auditors read the register, partners stay out."""

from __future__ import annotations

from datetime import timedelta

from registry import tokens, users
from tests.conftest import StartBeacon
from tests.test_console import HTTP, PASSWORD, csrf_of, sign_in
from tests.test_sharing import TODAY

FORM = {"partner": "IOM DTM", "contact": "dtm@partner.example", "purposes": "planning, response",
        "dimensions": "area", "formats": "hxl", "area_level": "1", "min_cell": "12", "frequency": "monthly",
        "starts_on": TODAY.isoformat(), "ends_on": (TODAY + timedelta(days=90)).isoformat(),
        "legal_basis": "MoU 2026"}


async def test_admins_record_and_auditors_read_the_register(start_beacon: StartBeacon) -> None:
    run = await start_beacon(BEACON_MIN_CELL="10", **HTTP)
    await users.create_user(run.beacon.db, "root", "admin", PASSWORD)
    await users.create_user(run.beacon.db, "audra", "auditor", PASSWORD)

    csrf = await sign_in(run, "root")
    low = await run.client.post("/console/arrangements", data={**FORM, "min_cell": "5", "csrf": csrf})
    text = await low.text()
    assert low.status == 422 and "min_cell" in text and 'value="IOM DTM"' in text  # kept what was typed
    done = await run.client.post("/console/arrangements", data={**FORM, "csrf": csrf}, allow_redirects=False)
    assert done.status == 303
    page = await (await run.client.get("/console/arrangements")).text()
    assert "IOM DTM" in page and "MoU 2026" in page and "Record an arrangement" in page

    run.client.session.cookie_jar.clear()
    csrf = await sign_in(run, "audra")
    page = await (await run.client.get("/console/arrangements")).text()
    assert "IOM DTM" in page and "Record an arrangement" not in page
    refused = await run.client.post("/console/arrangements", data={**FORM, "csrf": csrf}, allow_redirects=False)
    assert refused.status == 403

    # a partner's token opens the API only, never the console
    run.client.session.cookie_jar.clear()
    partner = await tokens.create(run.beacon.db, "partner", "dtm", 1)
    form = await run.client.get("/console/login")
    response = await run.client.post("/console/login", allow_redirects=False, data={
        "csrf": csrf_of(await form.text()), "token": partner})
    assert response.status != 303
