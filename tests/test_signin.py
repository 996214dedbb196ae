"""Console sign-in under attack: limits shared by every web process, per address and /64, a username
slowed down but never locked, and password checks that leave the event loop free."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from beacon.console.web import LOGIN_COOKIE
from registry import schema, signins, users
from tests.conftest import Running, StartBeacon, dev_keys

PASSWORD = "lantern-harbour-42"
WRONG = "harbour-lantern-24"
CSRF = "x" * 32
BEHIND_PROXY = {"BEACON_TRUSTED_PROXIES": "127.0.0.1", "BEACON_PUBLIC_URL": "http://127.0.0.1:8080"}


async def attempt(run: Running, address: str, username: str, password: str = WRONG) -> int:
    """One sign-in through the form from ``address`` (as the trusted proxy reports it); the status."""
    response = await run.client.post(
        "/console/login", allow_redirects=False, cookies={LOGIN_COOKIE: CSRF}, headers={"X-Forwarded-For": address},
        data={"csrf": CSRF, "username": username, "password": password})
    return response.status


async def failures_at(run: Running, when: datetime) -> None:
    """Move every recorded failure to ``when``."""
    async with run.beacon.db.write() as conn:
        await conn.execute(update(schema.signin_failures).values(at=when))


async def test_two_web_processes_on_one_database_share_the_limits(start_beacon: StartBeacon,
                                                                    database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite serves one process (tests/test_single_process.py)")
    shared = {"BEACON_DATABASE_URL": database_url, "BEACON_KEYS": dev_keys(), **BEHIND_PROXY}
    one = await start_beacon(**shared)
    two = await start_beacon(worker=False, **shared)
    await users.create_user(one.beacon.db, "amal", "responder", PASSWORD)
    for n in range(signins.ADDRESS_FAILURES):  # an address's failures, on either process
        assert await attempt((one, two)[n % 2], "10.0.0.1", f"nobody{n}") == 401
    assert await attempt(one, "10.0.0.1", "nobody-else") == 429
    assert await attempt(two, "10.0.0.1", "amal", PASSWORD) == 429
    for n in range(signins.USER_FREE_FAILURES):  # a username's failures, from anywhere, on either process
        assert await attempt((one, two)[n % 2], f"10.0.1.{n}", "amal") == 401
    assert await attempt(two, "10.0.2.1", "amal", PASSWORD) == 429
    assert await attempt(one, "10.0.2.1", "amal", PASSWORD) == 429


async def test_a_flood_of_wrong_passwords_does_not_keep_the_owner_out(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**BEHIND_PROXY)
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    flood = [await attempt(run, f"10.1.{n // 100}.{n % 100}", "amal") for n in range(40)]  # many addresses
    assert flood[:signins.USER_FREE_FAILURES] == [401] * signins.USER_FREE_FAILURES
    assert flood.count(401) < 10 and flood[-1] == 429  # the rest waited: not checked at all
    await failures_at(run, datetime.now(UTC))
    assert await attempt(run, "10.9.9.9", "amal", PASSWORD) == 429  # during the delay, not even the owner
    await failures_at(run, datetime.now(UTC) - signins.USER_MAX_DELAY)
    assert await attempt(run, "10.9.9.9", "amal", PASSWORD) == 303  # after it, the right password works
    assert await attempt(run, "10.1.0.1", "amal") == 401  # and the username starts afresh


async def test_health_answers_while_twenty_sign_ins_run(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**BEHIND_PROXY)
    tasks = [asyncio.create_task(attempt(run, f"10.2.0.{n}", f"someone{n}")) for n in range(20)]
    f = schema.signin_failures.c
    for _ in range(500):  # until every attempt is under way (each is written down before its check)
        async with run.beacon.db.read() as conn:
            taken = (await conn.execute(select(func.count()).where(f.key.startswith("addr:")))).scalar_one()
        if taken == 20:
            break
        await asyncio.sleep(0.01)
    assert taken == 20
    health = await run.client.get("/healthz")
    finished = sum(task.done() for task in tasks)
    assert health.status == 200
    assert finished <= 10, finished  # the checks queue in their threads, not in front of the health check
    assert await asyncio.gather(*tasks) == [401] * 20


async def test_neighbours_in_an_ipv6_64_share_a_budget(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**BEHIND_PROXY)
    for n in range(signins.ADDRESS_FAILURES):
        assert await attempt(run, f"2001:db8:1:2::{n + 1:x}", f"nobody{n}") == 401
    assert await attempt(run, "2001:db8:1:2:ffff:ffff:ffff:fffe", "nobody-else") == 429  # the same /64
    assert await attempt(run, "2001:db8:1:3::1", "nobody-else") == 401  # the next /64
    for n in range(signins.ADDRESS_FAILURES):
        assert await attempt(run, "10.3.0.1", f"nobody{n}") == 401
    assert await attempt(run, "10.3.0.1", "nobody-else") == 429
    assert await attempt(run, "10.3.0.2", "nobody-else") == 401  # an IPv4 neighbour has its own


async def test_many_failures_across_the_service_hold_back_addresses_that_failed(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**BEHIND_PROXY)
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    assert await attempt(run, "10.4.0.1", "nobody") == 401
    now = datetime.now(UTC) - timedelta(seconds=1)
    async with run.beacon.db.write() as conn:  # a spray from many addresses, one guess each
        await conn.execute(schema.signin_failures.insert(), [
            {"key": f"addr:10.5.{n // 250}.{n % 250}", "at": now} for n in range(signins.SERVICE_FAILURES)])
    assert await attempt(run, "10.4.0.1", "amal", PASSWORD) == 429  # an address that failed waits
    assert await attempt(run, "10.4.0.2", "amal", PASSWORD) == 303  # staff elsewhere still get in
