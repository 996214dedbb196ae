"""The console works whichever web process a request lands on: a session, its CSRF token and its sign-out
live in the database, not in the process that signed the user in."""

from __future__ import annotations

import pytest

from beacon.console.web import COOKIE
from registry import users
from tests.conftest import POSTGRES_URL, StartBeacon, dev_keys, reset_postgres
from tests.test_console import HTTP, PASSWORD, csrf_of, sign_in


@pytest.mark.slow
async def test_a_session_signed_in_on_one_web_process_works_on_the_other(start_beacon: StartBeacon) -> None:
    if not POSTGRES_URL:
        pytest.skip("BEACON_TEST_POSTGRES_URL is not set")
    await reset_postgres(POSTGRES_URL)
    shared = {"BEACON_DATABASE_URL": POSTGRES_URL, "BEACON_KEYS": dev_keys(), **HTTP}
    one = await start_beacon(worker=False, **shared)
    two = await start_beacon(worker=False, **shared)
    await users.create_user(one.beacon.db, "amal", "responder", PASSWORD)
    csrf = await sign_in(one, "amal")
    jar = one.client.session.cookie_jar
    session = {COOKIE: jar.filter_cookies(one.client.make_url("/console/overview"))[COOKIE].value}
    page = await two.client.get("/console/broadcasts", cookies=session)
    assert page.status == 200 and csrf_of(await page.text()) == csrf
    signed_out = await two.client.post("/console/logout", cookies=session, data={"csrf": csrf},
                                       allow_redirects=False)
    assert signed_out.status == 303
    again = await one.client.get("/console/broadcasts", allow_redirects=False)
    assert again.status in (302, 303) and "/console/login" in again.headers["Location"]
