"""The console over plain HTTP: accounts, sessions, CSRF, roles, redirects, page weight and audit of views."""

from __future__ import annotations

import asyncio
import html
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select, update

from registry import audit, schema, users
from tests.conftest import Running, StartBeacon, environment
from tests.helpers import eventually

PASSWORD = "lantern-harbour-42"
HTTP = {"BEACON_PUBLIC_URL": "http://127.0.0.1:8080"}  # plain http: the test client then sends the cookie back
PAGES = ("overview", "compose", "broadcasts", "cases", "aggregates", "audit", "assisted", "arrangements", "imports",
         "sources")
ALLOWED = {
    "admin": set(PAGES),
    "responder": {"overview", "compose", "broadcasts", "cases", "aggregates"},
    "analyst": {"overview", "aggregates"},
    "auditor": {"overview", "audit", "arrangements"},
    "fieldworker": {"assisted"},
}


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF field on the page"
    return html.unescape(found.group(1))


async def sign_in(run: Running, username: str, password: str = PASSWORD, *, next_: str = "") -> str:
    """Sign in through the form; the session's CSRF token."""
    form = await run.client.get("/console/login")
    response = await run.client.post("/console/login", allow_redirects=False, data={
        "csrf": csrf_of(await form.text()), "username": username, "password": password, "next": next_})
    assert response.status == 303, await response.text()
    page = await run.client.get("/console/")  # the role's front door
    assert page.status == 200
    return csrf_of(await page.text())


async def previewed(run: Running, csrf: str, **fields: str) -> str:
    """Compose and preview; the payload the preview page carries to its Send button."""
    page = await (await run.client.post("/console/compose", data={"csrf": csrf, **fields})).text()
    found = re.search(r'name="payload" value="([^"]+)"', page)
    assert found, "no preview"
    return html.unescape(found.group(1))


async def register(run: Running, phone: str, language: str = "en") -> None:
    await run.converse(phone, "JOIN", language, "1", "tripoli", "0", "0", "0", "0", "0", "0")


def test_passwords_are_scrypt_hashes_with_salt() -> None:
    first, second = users.hash_password(PASSWORD), users.hash_password(PASSWORD)
    assert first.startswith("scrypt$32768$8$1$") and first != second
    assert users.check_password(PASSWORD, first) and users.check_password(PASSWORD, second)
    assert not users.check_password(PASSWORD + "x", first)
    assert not users.check_password(PASSWORD, "md5$abc")


async def test_accounts_refuse_weak_or_duplicate_input(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    db = run.beacon.db
    with pytest.raises(users.UserError, match="at least 12"):
        await users.create_user(db, "amal", "responder", "short")
    with pytest.raises(users.UserError, match="username"):
        await users.create_user(db, "amal", "responder", "amal-is-my-password")
    with pytest.raises(users.UserError, match="role"):
        await users.create_user(db, "amal", "superuser", PASSWORD)
    await users.create_user(db, "amal", "responder", PASSWORD)
    with pytest.raises(users.UserError, match="already exists"):
        await users.create_user(db, "amal", "analyst", PASSWORD)
    async with db.read() as conn:
        stored = (await conn.execute(select(schema.console_users.c.password_hash))).scalar_one()
    assert PASSWORD not in stored


async def test_session_cookie_flags(start_beacon: StartBeacon) -> None:
    run = await start_beacon()  # public URL is https: cookies must be Secure
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    form = await run.client.get("/console/login")
    login_cookie = form.headers["Set-Cookie"]
    assert "Secure" in login_cookie and "HttpOnly" in login_cookie
    # The test client keeps Secure cookies for https: hand this one back as a browser on https would.
    response = await run.client.post("/console/login", allow_redirects=False, data={
        "csrf": csrf_of(await form.text()), "username": "amal", "password": PASSWORD},
        headers={"Cookie": login_cookie.split(";")[0]})
    assert response.status == 303
    cookie = next(c for c in response.headers.getall("Set-Cookie") if c.startswith("beacon_session="))
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite", "path"} <= flags
    assert "SameSite=Strict" in cookie and "Path=/console" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    async with run.beacon.db.read() as conn:
        stored = (await conn.execute(select(schema.console_sessions.c.id_hash))).scalars().all()
    assert value not in stored and len(stored) == 1  # only a digest of the cookie is kept


@pytest.mark.slow
async def test_every_role_sees_exactly_its_pages(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    for role in ALLOWED:
        await users.create_user(run.beacon.db, f"{role}-1", role, PASSWORD)
    for role, allowed in ALLOWED.items():
        run.client.session.cookie_jar.clear()
        await sign_in(run, f"{role}-1")
        overview = await (await run.client.get("/console/overview")).text()
        for page in PAGES:
            response = await run.client.get(f"/console/{page}", allow_redirects=False)
            assert response.status == (200 if page in allowed else 403), (role, page)
            assert (f'href="/console/{page}"' in overview) == (page in allowed), (role, page)


@pytest.mark.slow
async def test_signed_out_visitors_are_sent_to_sign_in_and_back(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    response = await run.client.get("/console/cases?status=open", allow_redirects=False)
    location = urlsplit(response.headers["Location"])
    assert response.status == 303 and location.path == "/console/login"
    assert parse_qs(location.query) == {"next": ["/console/cases?status=open"]}
    poll = await run.client.get("/console/broadcasts/1/tallies", headers={"Accept": "application/json"})
    assert poll.status == 401
    form = await run.client.get("/console/login")
    done = await run.client.post("/console/login", allow_redirects=False, data={
        "csrf": csrf_of(await form.text()), "username": "amal", "password": PASSWORD,
        "next": "/console/cases?status=open"})
    assert done.headers["Location"] == "/console/cases?status=open"
    for target in ("//evil.example/x", "https://evil.example/", "/api/v1/audit", "/console/\\evil"):
        run.client.session.cookie_jar.clear()
        form = await run.client.get("/console/login")
        done = await run.client.post("/console/login", allow_redirects=False, data={
            "csrf": csrf_of(await form.text()), "username": "amal", "password": PASSWORD, "next": target})
        assert done.headers["Location"] == "/console/overview", target


@pytest.mark.slow
async def test_forms_without_the_csrf_token_change_nothing(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    await register(run, "+2348010000001")
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    csrf = await sign_in(run, "amal")
    payload = '{"text": {"en": "Evacuate now"}, "audience": {}, "check_in": false}'
    for data in ({"payload": payload}, {"payload": payload, "csrf": "forged"}, {"payload": payload, "csrf": ""}):
        response = await run.client.post("/console/broadcasts", data=data, allow_redirects=False)
        assert response.status == 403
        assert "expired" in await response.text()
    async with run.beacon.db.read() as conn:
        assert (await conn.execute(select(schema.broadcasts.c.id))).first() is None
    sent = await run.client.post("/console/broadcasts", data={"payload": payload, "csrf": csrf}, allow_redirects=False)
    assert sent.status == 303 and re.fullmatch(r"/console/broadcasts/\d+", sent.headers["Location"])
    # The sign-in form has its own double-submit token.
    run.client.session.cookie_jar.clear()
    forged = await run.client.post("/console/login", data={"csrf": "x", "username": "amal", "password": PASSWORD})
    assert forged.status == 403


@pytest.mark.slow
async def test_sessions_end_when_idle_expired_signed_out_or_disabled(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    db = run.beacon.db
    await users.create_user(db, "amal", "responder", PASSWORD)
    s = schema.console_sessions.c

    async def age(**moved: datetime) -> None:
        async with db.write() as conn:
            await conn.execute(update(schema.console_sessions).values(**moved))

    await sign_in(run, "amal")
    await age(last_seen_at=datetime.now(UTC) - users.IDLE - timedelta(minutes=1))
    assert (await run.client.get("/console/overview", allow_redirects=False)).status == 303
    await sign_in(run, "amal")
    await age(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert (await run.client.get("/console/overview", allow_redirects=False)).status == 303
    csrf = await sign_in(run, "amal")
    out = await run.client.post("/console/logout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/console/login?signed_out=1"
    assert (await run.client.get("/console/overview", allow_redirects=False)).status == 303
    await sign_in(run, "amal")
    await users.disable_user(db, "amal")
    assert (await run.client.get("/console/overview", allow_redirects=False)).status == 303
    form = await run.client.get("/console/login")
    refused = await run.client.post("/console/login", data={
        "csrf": csrf_of(await form.text()), "username": "amal", "password": PASSWORD})
    assert refused.status == 401
    async with db.read() as conn:
        assert (await conn.execute(select(s.id_hash))).first() is None
        actions = [row.action for row in await audit.entries(conn, actor="user:amal")]
    assert "console.signed_in" in actions and "console.signed_out" in actions


async def test_api_tokens_sign_in_too(start_beacon: StartBeacon) -> None:
    from registry import tokens

    run = await start_beacon(**HTTP)
    token = await tokens.create(run.beacon.db, "auditor", "night-auditor")
    form = await run.client.get("/console/login")
    response = await run.client.post("/console/login", allow_redirects=False, data={
        "csrf": csrf_of(await form.text()), "token": token})
    assert response.status == 303
    assert (await run.client.get("/console/audit")).status == 200
    page = await (await run.client.get("/console/overview")).text()
    assert "night-auditor" in page


async def test_case_views_are_audited_and_the_queue_shows_no_personal_details(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    phone = "+2348010000009"
    await register(run, phone)
    from registry.tokens import create

    headers = {"Authorization": "Bearer " + await create(run.beacon.db, "responder", "api")}
    created = await run.client.post("/api/v1/broadcasts", headers=headers,
                                    json={"text": {"en": "Storm"}, "check_in": True})
    assert created.status == 201

    async def reached() -> bool:  # the broadcast's fan-out runs in the background: wait until it reached them
        async with run.beacon.db.read() as conn:
            return (await conn.execute(select(func.count()).select_from(schema.recipients))).scalar_one() > 0

    await eventually(reached, timeout=30, what="the broadcast's fan-out")
    assert await run.simulate(phone, "2")
    await run.simulate(phone, "1")  # kind of help: medical
    await run.simulate(phone, "Insulin for my father")
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    await sign_in(run, "amal")
    queue = await (await run.client.get("/console/cases")).text()
    case_id = re.search(r'href="/console/cases/(\d+)"', queue).group(1)  # type: ignore[union-attr]
    assert phone not in queue and "Insulin" not in queue
    page = await (await run.client.get(f"/console/cases/{case_id}")).text()
    assert phone in page and "Insulin for my father" in page
    async with run.beacon.db.read() as conn:
        viewed = await audit.entries(conn, action="case.viewed")
    assert [(row.actor, row.subject) for row in viewed] == [("user:amal", case_id)]
    assert phone not in viewed[0].detail


@pytest.mark.slow
async def test_every_page_is_light_enough_for_a_slow_link(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    for n in range(12):
        await register(run, f"+23480100001{n:02d}")
    await users.create_user(run.beacon.db, "root", "admin", PASSWORD)
    await sign_in(run, "root")
    for page in ("login", *PAGES):
        body = await (await run.client.get(f"/console/{page}")).read()
        assets = re.findall(rb'(?:href|src)="(/console/static/[^"]+)"', body)
        assert assets, page
        weight = len(body) + sum([len(await (await run.client.get(a.decode())).read()) for a in set(assets)])
        assert weight < 200 * 1024, (page, weight)


@pytest.mark.slow
def test_user_create_command(tmp_path: Path) -> None:
    env = {**os.environ, **environment(tmp_path)}
    env.pop("BEACON_TEST_POSTGRES_URL", None)
    command = [str(Path(sys.executable).parent / "beacon"), "user", "create", "--role", "responder", "--name", "amal"]
    done = subprocess.run(command, input=PASSWORD + "\n", env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "user amal (responder) created" in done.stdout and PASSWORD not in done.stdout + done.stderr
    weak = subprocess.run([*command[:-1], "bob"], input="short\n", env=env, capture_output=True, text=True,
                          timeout=60)
    assert weak.returncode != 0 and weak.stderr.strip().splitlines()[-1].endswith("at least 12 characters")
    again = subprocess.run(command, input=PASSWORD + "\n", env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "already exists" in again.stderr


async def test_compose_explains_mistakes_and_keeps_what_was_typed(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    await register(run, "+2348010000001", "ar")
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    csrf = await sign_in(run, "amal")
    empty = await run.client.post("/console/compose", data={"csrf": csrf, "remind_after_minutes": "soon"})
    assert empty.status == 422
    page = await empty.text()
    assert "Write the message in at least one language." in page
    assert "Give the reminder delay in whole minutes." in page
    kept = await run.client.post("/console/compose", data={
        "csrf": csrf, "text_ar": "إخلاء فوري", "areas": "atlantis", "check_in": "on"})
    assert kept.status == 422
    page = await kept.text()
    assert "Choose areas from the list." in page and "إخلاء فوري</textarea>" in page


async def test_a_scheduled_broadcast_waits_for_its_time(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    await register(run, "+2348010000001")
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    csrf = await sign_in(run, "amal")
    when = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    preview = await run.client.post("/console/compose", data={
        "csrf": csrf, "text_en": "Curfew from 8 pm tomorrow", "send_at": when, "areas": "tripoli"})
    page = await preview.text()
    assert preview.status == 200 and "Schedule the broadcast" in page and when.replace("T", " ") in page
    payload = html.unescape(re.search(r'name="payload" value="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    back = await run.client.post("/console/compose/edit", data={"csrf": csrf, "payload": payload})
    assert "Curfew from 8 pm tomorrow</textarea>" in await back.text()
    sent = await run.client.post("/console/broadcasts", data={"csrf": csrf, "payload": payload},
                                 allow_redirects=False)
    broadcast = await run.client.get(sent.headers["Location"])
    assert "scheduled" in await broadcast.text()
    tallies = await (await run.client.get(sent.headers["Location"] + "/tallies")).json()
    assert tallies == {"status": "scheduled", "counts": {"recipients": 0, "queued": 0, "sent": 0, "delivered": 0,
                                                         "failed": 0}}


async def test_preview_names_the_languages_still_without_a_text(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    await register(run, "+2348010000001", "en")
    await register(run, "+2348010000002", "fr")
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    csrf = await sign_in(run, "amal")
    preview = await run.client.post("/console/compose", data={"csrf": csrf, "text_en": "Shelter at the school"})
    page = await preview.text()
    assert preview.status == 200
    assert "No text yet for: Français. These people will get the English text." in page


async def test_revoking_a_token_ends_its_console_sessions(start_beacon: StartBeacon) -> None:
    from registry import tokens

    run = await start_beacon(**HTTP)
    token = await tokens.create(run.beacon.db, "admin", "ops")
    form = await run.client.get("/console/login")
    await run.client.post("/console/login", data={"csrf": csrf_of(await form.text()), "token": token})
    assert (await run.client.get("/console/audit", allow_redirects=False)).status == 200
    await tokens.revoke(run.beacon.db, "ops")
    assert (await run.client.get("/console/audit", allow_redirects=False)).status == 303


@pytest.mark.slow
async def test_sign_in_limits_count_real_attempts_per_client(start_beacon: StartBeacon) -> None:
    from registry import tokens

    run = await start_beacon(**HTTP, BEACON_TRUSTED_PROXIES="127.0.0.1")
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    token = await tokens.create(run.beacon.db, "responder", "kiosk")

    async def attempt(address: str, **fields: str) -> int:
        form = await run.client.get("/console/login")
        response = await run.client.post("/console/login", allow_redirects=False, headers={
            "X-Forwarded-For": f"10.9.9.9, {address}"}, data={"csrf": csrf_of(await form.text()), **fields})
        return response.status

    for _ in range(12):  # empty forms are not attempts
        assert await attempt("203.0.113.5") == 400
    for n in range(20):  # one address guessing many usernames
        assert await attempt("203.0.113.5", username=f"ghost{n}", password="wrong-password-1") == 401
    assert await attempt("203.0.113.5", username="amal", password=PASSWORD) == 429
    run.client.session.cookie_jar.clear()
    assert await attempt("198.51.100.7", username="amal", password=PASSWORD) == 303  # another client is not blocked
    run.client.session.cookie_jar.clear()
    assert await attempt("198.51.100.8", token=token) == 303


async def test_a_preview_sent_twice_makes_one_broadcast(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    await register(run, "+2348010000001")
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    csrf = await sign_in(run, "amal")
    payload = await previewed(run, csrf, text_en="Boil water")
    first, second = [await run.client.post("/console/broadcasts", data={"csrf": csrf, "payload": payload},
                                           allow_redirects=False) for _ in range(2)]
    assert first.headers["Location"] == second.headers["Location"]
    async with run.beacon.db.read() as conn:
        assert len((await conn.execute(select(schema.broadcasts.c.id))).all()) == 1


async def test_odd_input_gets_a_clear_answer_never_a_crash(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    await users.create_user(run.beacon.db, "amal", "admin", PASSWORD)
    csrf = await sign_in(run, "amal")
    for path in ("/console/broadcasts/99999999999999999999", "/console/cases/-1", "/console/cases/١",
                 "/console/broadcasts/1x/tallies"):
        assert (await run.client.get(path)).status == 404, path
    huge = await run.client.get("/console/aggregates?by=status&broadcast=99999999999999999999")
    assert huge.status == 200
    stats = await run.client.get("/console/aggregates/stats.csv?by=status&broadcast=99999999999999999999")
    assert stats.status == 422
    bad = await run.client.post("/console/compose", data={"csrf": csrf, "text_en": "x", "remind_after_minutes": "²"})
    assert bad.status == 422 and "whole minutes" in await bad.text()
    for payload in ('{"text": 5}', '{"text": {"en": "x"}, "send_at": "soon"}', "[]", "not json",
                    '{"text": {"en": "x"}, "audience": {"areas": [1]}}'):
        for path in ("/console/compose/edit", "/console/broadcasts"):
            response = await run.client.post(path, data={"csrf": csrf, "payload": payload})
            assert response.status in (200, 422), (path, payload, response.status)
    garbled = await run.client.post("/console/compose", data=b"csrf=" + csrf.encode() + b"&text_en=\xff\xfe",
                                    headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    assert garbled.status == 400
    async with run.beacon.db.read() as conn:
        assert (await conn.execute(select(schema.broadcasts.c.id))).first() is None


async def test_a_case_closed_meanwhile_keeps_the_note_and_says_so(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    phone = "+2348010000009"
    await register(run, phone)
    async with run.beacon.db.write() as conn:
        from campaigns import cases

        registrant = (await conn.execute(select(schema.registrants.c.id))).scalar_one()
        case_id = await cases.open_case(conn, registrant, None, "tripoli")
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    csrf = await sign_in(run, "amal")
    closed = await run.client.post(f"/console/cases/{case_id}", data={"csrf": csrf, "action": "close"})
    assert closed.status == 200
    late = await run.client.post(f"/console/cases/{case_id}", data={
        "csrf": csrf, "action": "progress", "note": "Called twice, no answer"})
    page = await late.text()
    assert late.status == 200 and "changed meanwhile" in page and "Called twice, no answer" in page


async def test_cancelling_a_finished_broadcast_changes_and_audits_nothing(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    await register(run, "+2348010000001")
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    csrf = await sign_in(run, "amal")
    payload = await previewed(run, csrf, text_en="All clear")
    sent = await run.client.post("/console/broadcasts", data={"csrf": csrf, "payload": payload},
                                 allow_redirects=False)
    where = sent.headers["Location"]
    for _ in range(200):
        tallies = await (await run.client.get(where + "/tallies")).json()
        if tallies["status"] == "sent" and tallies["counts"]["queued"] == 0:
            break
        await asyncio.sleep(0.05)
    page = await (await run.client.post(where + "/cancel", data={"csrf": csrf})).text()
    assert "Nothing was left to stop" in page
    async with run.beacon.db.read() as conn:
        assert await audit.entries(conn, action="broadcast.cancelled") == []


async def test_a_form_sent_after_the_session_ended_leads_back_through_sign_in(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    await users.create_user(run.beacon.db, "amal", "responder", PASSWORD)
    csrf = await sign_in(run, "amal")
    async with run.beacon.db.write() as conn:
        await conn.execute(update(schema.console_sessions).values(expires_at=datetime.now(UTC)))
    referer = str(run.client.make_url("/console/compose"))
    response = await run.client.post("/console/compose", data={"csrf": csrf, "text_en": "x"},
                                     headers={"Referer": referer}, allow_redirects=False)
    location = urlsplit(response.headers["Location"])
    assert response.status == 303 and location.path == "/console/login"
    assert parse_qs(location.query) == {"next": ["/console/compose"], "expired": ["1"]}
    login = await run.client.get(response.headers["Location"])
    assert "was not saved" in await login.text()


async def test_refusals_carry_the_security_headers_too(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    await users.create_user(run.beacon.db, "olga", "auditor", PASSWORD)
    await sign_in(run, "olga")
    for path in ("/console/aggregates/stats.csv?by=area", "/console/cases", "/console/nowhere"):
        response = await run.client.get(path)
        assert response.status in (403, 404), path
        assert response.headers["Cache-Control"] == "no-store" and "frame-ancestors" in response.headers[
            "Content-Security-Policy"], path
