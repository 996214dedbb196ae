"""The budget of failed STATUS look-ups across everyone: many askers guessing codes stop everyone's look-ups
for the rest of the window, and operators see it in /metrics."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from sqlalchemy import update

from bot import texts
from bot.i18n import gettext_for
from campaigns import family
from registry import schema
from registry.db import Database
from registry.keys import KeyHolder
from tests.conftest import Running, StartBeacon
from tests.helpers import REGISTERED, enrol

CODE = "CCCCCCCC"
NOW = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
ASKERS = family.FAILED_LOOKUP_BUDGET // family.MAX_FAILED_LOOKUPS


def exhausted() -> float:
    return REGISTRY.get_sample_value("beacon_status_lookup_budget_exhausted_total") or 0.0


async def sharing(db: Database, keys: KeyHolder) -> None:
    """A registrant named Amina with the share code CODE."""
    person = await enrol(db, keys, "+2348010000001", replace(REGISTERED, first_name="Amina"))
    async with db.write() as conn:
        await family.issue_code(conn, keys.ring, person, CODE)


async def guess_wrong(db: Database, keys: KeyHolder, now: datetime) -> None:
    """Each asker guesses wrong as often as their own limit lets them: together, the whole budget."""
    async with db.write() as conn:
        for asker in range(ASKERS):
            for _ in range(family.MAX_FAILED_LOOKUPS):
                found = await family.lookup(conn, keys.ring, f"asker {asker}".encode(), "AAAAAAAA", now)
                assert found.outcome == "unknown"


async def test_many_askers_guessing_exhaust_the_budget_until_the_window_ends(db: Database, keys: KeyHolder) -> None:
    await sharing(db, keys)
    before = exhausted()
    await guess_wrong(db, keys, NOW)
    assert REGISTRY.get_sample_value("beacon_status_lookup_failures_window") == family.FAILED_LOOKUP_BUDGET
    async with db.write() as conn:
        # a new asker with the right code is refused while the budget is spent, and is not counted
        assert (await family.lookup(conn, keys.ring, b"family", CODE, NOW)).outcome == "too_many"
        assert (await family.lookup(conn, keys.ring, b"family", CODE, NOW + timedelta(minutes=59))).outcome \
            == "too_many"
        assert exhausted() == before + 2
        later = NOW + family.LOOKUP_WINDOW + timedelta(seconds=1)
        found = await family.lookup(conn, keys.ring, b"family", CODE, later)
    assert (found.outcome, found.first_name) == ("found", "Amina")
    assert exhausted() == before + 2
    assert REGISTRY.get_sample_value("beacon_status_lookup_failures_window") == 0


async def test_fewer_failures_than_the_budget_leave_look_ups_working(db: Database, keys: KeyHolder) -> None:
    await sharing(db, keys)
    async with db.write() as conn:
        for asker in range(ASKERS - 1):
            for _ in range(family.MAX_FAILED_LOOKUPS):
                await family.lookup(conn, keys.ring, f"asker {asker}".encode(), "AAAAAAAA", NOW)
        assert (await family.lookup(conn, keys.ring, b"family", CODE, NOW)).outcome == "found"


async def test_a_family_member_is_told_to_try_later_while_the_budget_is_spent(start_beacon: StartBeacon) -> None:
    run: Running = await start_beacon()
    db, keys = run.beacon.db, run.beacon.keys
    await sharing(db, keys)
    await guess_wrong(db, keys, datetime.now(UTC))
    asker = "+2348010000050"
    assert await run.simulate(asker, f"STATUS {CODE}") == [gettext_for("en", texts.STATUS_TOO_MANY)]
    sl = schema.status_lookups.c
    async with db.write() as conn:  # the database's clock moves on past the window
        await conn.execute(update(schema.status_lookups).values(at=sl.at - family.LOOKUP_WINDOW))
    [answer] = await run.simulate(asker, f"STATUS {CODE}")
    assert "Amina" in answer
