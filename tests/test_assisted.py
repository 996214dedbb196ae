"""Assisted registration end to end: a fieldworker signs in to the console, registers a person met in person, and
the person's confirmation leaves through the Twilio double; fieldworkers see only their own last 24 hours."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from bot import texts
from bot.i18n import render
from registry import schema, users
from tests.conftest import Running, StartBeacon
from tests.helpers import settle
from tests.test_console import PASSWORD, sign_in

HTTP = {"BEACON_PUBLIC_URL": "http://127.0.0.1:8080", "BEACON_OPERATOR_NAME": "Tripoli Red Crescent"}
PHONE = "+218912345678"


async def register(run: Running, csrf: str, **fields: str) -> tuple[int, str]:
    form = {"csrf": csrf, "language": "ar", "phone": PHONE, "channel": "sms", "area": "tripoli", "consent": "yes",
            **fields}
    response = await run.client.post("/console/assisted", data=form, allow_redirects=False)
    return response.status, response.headers.get("Location", "") or await response.text()


async def mydata(run: Running) -> str:
    """What the person gets back for MYDATA, all messages joined."""
    assert run.twilio is not None
    before = len(run.twilio.sent_to(PHONE))
    assert (await run.twilio_inbound(PHONE, "MYDATA")).status == 200
    await settle(run)
    return "\n".join(m.body for m in run.twilio.sent_to(PHONE)[before:])


async def test_a_fieldworker_registers_a_person_who_gets_a_confirmation_sms(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, **HTTP)
    assert run.twilio is not None
    await users.create_user(run.beacon.db, "amal", "fieldworker", PASSWORD)
    csrf = await sign_in(run, "amal")
    page = await (await run.client.get("/console/assisted?language=ar")).text()
    notice = render("ar", texts.NOTICE, operator="Tripoli Red Crescent", months=24)
    assert html.escape(notice, quote=False) in page  # read out in the person's language
    status, body = await register(run, csrf, consent="", first_name="Huda")
    assert status == 400 and "Huda" in body and PHONE in body  # nothing lost, nothing stored
    status, location = await register(run, csrf, first_name="Huda")
    assert status == 303 and location.startswith("/console/assisted?done=")
    await settle(run)
    sent = [m.body for m in run.twilio.sent_to(PHONE)]
    assert sent[0] == render("ar", texts.ASSISTED_CONFIRMATION, operator="Tripoli Red Crescent")
    assert PHONE in sent[1] and "Huda" in sent[1] and "طرابلس" in sent[1]
    c = schema.consents.c
    async with run.beacon.db.read() as conn:
        consent = (await conn.execute(select(c.method, c.recorded_by, c.notice_version, c.language))).one()
        actions = (await conn.execute(select(schema.audit_log.c.actor, schema.audit_log.c.action))).all()
    assert tuple(consent) == ("assisted", "user:amal", run.beacon.service.bot.notice_version, "ar")
    assert ("user:amal", "assisted.registered") in [tuple(a) for a in actions]
    # the person manages their data by text, as if they had registered by text
    assert "Huda" in await mydata(run)
    # the same number again: refused, the person already manages it
    status, _ = await register(run, csrf)
    assert status == 409


async def test_fieldworkers_see_only_their_own_last_24_hours(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, **HTTP)
    for name in ("amal", "bilal"):
        await users.create_user(run.beacon.db, name, "fieldworker", PASSWORD)
    csrf = await sign_in(run, "amal")
    _, location = await register(run, csrf)
    mine = f"/console/assisted/{location.rsplit('=', 1)[1]}"
    assert (await run.client.get(mine)).status == 200
    for elsewhere in ("/console/overview", "/console/cases", "/console/audit", "/console/compose"):
        assert (await run.client.get(elsewhere, allow_redirects=False)).status == 403, elsewhere
    run.client.session.cookie_jar.clear()
    await sign_in(run, "bilal")
    assert (await run.client.get(mine)).status == 403
    assert mine not in await (await run.client.get("/console/assisted")).text()
    run.client.session.cookie_jar.clear()
    await sign_in(run, "amal")
    assert mine in await (await run.client.get("/console/assisted")).text()
    async with run.beacon.db.write() as conn:
        await conn.execute(update(schema.registrants).values(created_at=datetime.now(UTC) - timedelta(hours=25)))
    assert (await run.client.get(mine)).status == 403
    assert mine not in await (await run.client.get("/console/assisted")).text()
    async with run.beacon.db.read() as conn:
        actions = (await conn.execute(select(schema.audit_log.c.action))).scalars().all()
    assert {"assisted.registered", "assisted.viewed", "assisted.refused", "assisted.listed"} <= set(actions)


async def test_employer_fields_only_when_turned_on_sealed_and_shown_in_mydata(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, BEACON_EMPLOYER_FIELDS="on", **HTTP)
    assert run.twilio is not None
    await users.create_user(run.beacon.db, "amal", "fieldworker", PASSWORD)
    csrf = await sign_in(run, "amal")
    assert 'name="employer"' in await (await run.client.get("/console/assisted?language=en")).text()
    await register(run, csrf, language="en", employer="Sahara Builders", recruitment_agency="Fast Jobs")
    await settle(run)
    assert "Sahara Builders" in "\n".join(m.body for m in run.twilio.sent_to(PHONE))
    async with run.beacon.db.read() as conn:
        sealed = (await conn.execute(select(schema.profile_secrets.c.field, schema.profile_secrets.c.value_ct))).all()
    assert {f for f, _ in sealed} == {"employer", "recruitment_agency"}
    assert all(b"Sahara" not in v for _, v in sealed)
    assert "Fast Jobs" in await mydata(run)


async def test_employer_fields_are_off_by_default(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    await users.create_user(run.beacon.db, "amal", "fieldworker", PASSWORD)
    await sign_in(run, "amal")
    assert 'name="employer"' not in await (await run.client.get("/console/assisted?language=en")).text()
