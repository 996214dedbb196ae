"""The personal link of an invitation (/join/invited/<token>): in the invitation text when the deployment has a
public URL; its page in the person's language changes nothing; its three buttons do what YES, STOP and DELETE by
text do, once; a used, expired or unknown link says so and nothing more."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import markupsafe
import pytest
from sqlalchemy import func, select, update

from beacon import config
from beacon.logs import configure
from bot import texts
from bot.i18n import LANGUAGES, gettext_for, render
from campaigns import imports
from campaigns.import_file import read_table
from domain.segments import segments
from registry import invitation_links, retention, schema, tokens
from registry.times import aware
from tests.conftest import Running, StartBeacon
from tests.helpers import eventually, settle
from tests.test_imports import count, phone, say
from tests.test_logs import restore_logging  # noqa: F401 - a fixture

HTTP = {"BEACON_PUBLIC_URL": "http://127.0.0.1:8080"}  # plain http: the test client sends the CSRF cookie back
LINK = re.compile(r"http://127\.0\.0\.1:8080(/join/invited/[A-Za-z0-9_-]+)$")
PREVIEWERS = ("facebookexternalhit/1.1", "WhatsApp/2.23.20.0", "Slackbot-LinkExpanding 1.0",
              "TelegramBot (like TwitterBot)")


async def invite(run: Running, rows: str) -> None:
    """Import a small CSV (Phone,Lang,Region) with the links this deployment's configuration gives."""
    beacon, settings = run.beacon, run.settings
    assert settings.invitation_link_base is not None
    table = read_table(("Phone,Lang,Region\n" + rows).encode())
    await imports.run(beacon.db, beacon.keys.ring, beacon.service.bot, table,
                      {"phone": "Phone", "language": "Lang", "area": "Region"}, region="LY", legal_basis="consent",
                      by="admin-test", links=imports.Links(settings.invitation_link_base, settings.invitation_days))
    beacon.sender.wake()
    await settle(run)


def link_of(run: Running, number: str) -> str:
    """The path of the link in the invitation sent to ``number``."""
    assert run.twilio is not None
    [invitation] = run.twilio.sent_to(number)[:1]
    found = LINK.search(invitation.body)
    assert found is not None, invitation.body
    return found.group(1)


def shown(language: str, message: str, **params: Any) -> str:
    return str(markupsafe.escape(render(language, message, **params)))


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return html.unescape(found.group(1))


async def decide(run: Running, path: str, decision: str, status: int = 200) -> str:
    """Open the page, then press one of its buttons; the page that answers."""
    page = await run.client.get(path)
    assert page.status == 200
    response = await run.client.post(path, data={"csrf": csrf_of(await page.text()), "decision": decision})
    body = await response.text()
    assert response.status == status, body
    return body


async def people(run: Running) -> list[tuple[Any, ...]]:
    r = schema.registrants.c
    async with run.beacon.db.read() as conn:
        return [tuple(row) for row in (await conn.execute(
            select(r.id, r.step, r.consented, r.opted_out, r.area_id).order_by(r.id))).all()]


async def broadcast(run: Running, text: str) -> None:
    secret = await tokens.create(run.beacon.db, "responder", f"resp-{text[:8]}")
    created = await run.client.post("/api/v1/broadcasts", headers={"Authorization": f"Bearer {secret}"},
                                    json={"text": {"en": text}, "audience": {}, "check_in": False})
    assert created.status == 201
    await settle(run)


async def test_the_invitation_carries_a_link_whose_page_is_in_the_persons_language_and_changes_nothing(
        start_beacon: StartBeacon, database_url: str) -> None:
    run = await start_beacon(twilio=True, BEACON_DATABASE_URL=database_url, BEACON_OPERATOR_NAME="Consulate X", **HTTP)
    assert run.twilio is not None
    await invite(run, f"{phone(1)},ar,Tripoli\n{phone(2)},en,Tripoli\n")
    [arabic] = run.twilio.sent_to(phone(1))
    path = link_of(run, phone(1))
    assert arabic.body == (render("ar", texts.INVITATION, operator="Consulate X") + " "
                           + render("ar", texts.INVITATION_LINK, link="http://127.0.0.1:8080" + path))
    assert path != link_of(run, phone(2))
    token = path.rsplit("/", 1)[1]
    assert len(token) >= 22  # at least 128 random bits
    async with run.beacon.db.read() as conn:
        stored = (await conn.execute(select(schema.invitation_links))).all()
    assert len(stored) == 2 and invitation_links.token_hash(token) in {bytes(row.token_hash) for row in stored}
    assert all(token.encode() not in bytes(row.token_hash) for row in stored)  # only the hash is kept
    before = (await people(run), await count(run, schema.inbound), await count(run, schema.consents),
              await count(run, schema.audit_log))

    response = await run.client.get(path)
    page = await response.text()
    assert response.status == 200 and '<html lang="ar" dir="rtl">' in page and "<script" not in page
    assert shown("ar", texts.INVITATION_PAGE, operator="Consulate X") in page
    assert shown("ar", texts.WEB_AGREE) in page and shown("ar", texts.WEB_NO_THANKS) in page
    assert shown("ar", texts.WEB_ERASE_NUMBER) in page and shown("ar", texts.WEB_PROTECTED) in page
    assert 'method="post"' in page and response.headers["Cache-Control"] == "no-store"
    assert phone(1) not in page
    for agent in PREVIEWERS:  # link previewers and SMS scanners fetch the link, sometimes more than once
        assert (await run.client.get(path, headers={"User-Agent": agent})).status == 200
        assert (await run.client.head(path, headers={"User-Agent": agent})).status == 200
    await settle(run)
    after = (await people(run), await count(run, schema.inbound), await count(run, schema.consents),
             await count(run, schema.audit_log))
    assert after == before and all(step == "invited" and not consented for _, step, consented, _, _ in after[0])
    assert [m.body for m in run.twilio.sent_to(phone(1))] == [arabic.body]  # nothing more was sent
    # English for the English speaker
    english = await (await run.client.get(link_of(run, phone(2)))).text()
    assert '<html lang="en" dir="ltr">' in english


async def test_agree_registers_as_yes_by_text_does_and_the_link_works_once(
        start_beacon: StartBeacon, database_url: str) -> None:
    run = await start_beacon(twilio=True, BEACON_DATABASE_URL=database_url, **HTTP)
    assert run.twilio is not None
    await invite(run, f"{phone(1)},en,Tripoli\n{phone(2)},en,Tripoli\n{phone(3)},en,Tripoli\n")
    path = link_of(run, phone(1))
    done = await decide(run, path, "yes")
    await settle(run)
    # the page shows what was texted, and the texts are those of a YES by text
    expected = [render("en", texts.REGISTERED), render("en", texts.ASK_FIRST_NAME)]
    assert [m.body for m in run.twilio.sent_to(phone(1))][1:] == expected
    assert all(str(markupsafe.escape(text)) in done for text in expected)
    assert await say(run, phone(2), "YES") == expected
    consent = schema.consents.c
    async with run.beacon.db.read() as conn:
        methods = (await conn.execute(select(consent.method).order_by(consent.id))).scalars().all()
        audited = (await conn.execute(select(schema.audit_log.c.detail).where(
            schema.audit_log.c.action == "consent.given").order_by(schema.audit_log.c.seq))).scalars().all()
    assert methods == ["invitation-link", "import-invitation"]  # the link is noted as the way consent came
    assert [json.loads(a)["method"] for a in audited] == ["invitation-link", "import-invitation"]
    [first, second, third] = await people(run)
    assert first[1:] == second[1:] and first[2] is True and third[1] == "invited"

    # used: a second press, or the page again, says the link no longer works, and nothing about anyone
    reused = await run.client.post(path, data={"csrf": "x", "decision": "stop"})
    page = await reused.text()
    assert reused.status == 410 and shown("en", texts.WEB_LINK_GONE) in page and phone(1) not in page
    assert (await run.client.get(path)).status == 410
    # the person who answered by text has no working link either
    assert (await run.client.get(link_of(run, phone(2)))).status == 410

    await broadcast(run, "Flood warning")

    def got() -> list[bool]:
        assert run.twilio is not None
        return [any("Flood warning" in m.body for m in run.twilio.sent_to(phone(i))) for i in (1, 2, 3)]

    await eventually(lambda: got()[:2] == [True, True], timeout=30, what="the broadcast")
    await settle(run)
    assert got() == [True, True, False]  # agreed by link, agreed by text, never answered


async def test_an_answer_stored_before_the_link_was_marked_used_counts_once(start_beacon: StartBeacon) -> None:
    """A process dying between storing the answer and marking the link loses nothing and decides nothing twice."""
    run = await start_beacon(twilio=True, **HTTP)
    await invite(run, f"{phone(1)},en,Tripoli\n")
    path = link_of(run, phone(1))
    page = await run.client.get(path)
    csrf = csrf_of(await page.text())
    assert (await run.client.post(path, data={"csrf": csrf, "decision": "yes"})).status == 200
    await settle(run)
    async with run.beacon.db.write() as conn:  # as if the process had died before marking the link
        await conn.execute(update(schema.invitation_links).values(used_at=None))
    again = await run.client.post(path, data={"csrf": csrf, "decision": "stop"})
    assert again.status == 410
    await settle(run)
    i = schema.inbound.c
    async with run.beacon.db.read() as conn:
        answers = (await conn.execute(select(func.count()).select_from(schema.inbound)
                                      .where(i.provider == invitation_links.PROVIDER))).scalar_one()
    [(_, _, consented, opted_out, _)] = await people(run)
    assert answers == 1 and consented is True and not opted_out


async def test_no_thanks_stops_all_messages_as_stop_by_text_does(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, **HTTP)
    assert run.twilio is not None
    await invite(run, f"{phone(1)},fr,Tripoli\n{phone(2)},fr,Tripoli\n")
    done = await decide(run, link_of(run, phone(1)), "stop")
    await settle(run)
    assert [m.body for m in run.twilio.sent_to(phone(1))][1:] == [render("fr", texts.STOPPED)]
    assert shown("fr", texts.STOPPED) in done and '<html lang="fr" dir="ltr">' in done
    assert await say(run, phone(2), "STOP") == [render("fr", texts.STOPPED)]
    [first, second] = await people(run)
    assert first[1:] == second[1:] and first[3] is True  # opted out, like the text answer
    assert await count(run, schema.consents) == 0
    await broadcast(run, "Storm tonight")
    assert len(run.twilio.sent_to(phone(1))) == 2  # the invitation and the STOP confirmation, nothing since


async def test_erase_my_number_erases_the_person_as_delete_by_text_does(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, **HTTP)
    assert run.twilio is not None
    await invite(run, f"{phone(1)},en,Tripoli\n{phone(2)},en,Tripoli\n")
    path = link_of(run, phone(1))
    done = await decide(run, path, "delete")
    await settle(run)
    assert [m.body for m in run.twilio.sent_to(phone(1))][1:] == [render("en", texts.DELETED)]
    assert shown("en", texts.DELETED) in done
    # by text, DELETE asks first; the page's button was that confirmation
    assert await say(run, phone(2), "DELETE") == [render("en", texts.DELETE_CONFIRM)]
    assert await say(run, phone(2), "YES") == [render("en", texts.DELETED)]
    assert await people(run) == []
    assert await count(run, schema.identities) == 0 and await count(run, schema.consents) == 0
    async with run.beacon.db.read() as conn:
        erased = (await conn.execute(select(schema.audit_log.c.action).where(
            schema.audit_log.c.action == "registrant.erased"))).scalars().all()
        links = (await conn.execute(select(schema.invitation_links))).all()
    assert len(erased) == 2
    assert all(row.registrant_id is None and row.identity_id is None for row in links)  # nothing left to link
    assert (await run.client.get(path)).status == 410  # the used link still says so


async def test_an_expired_unknown_or_forged_link_decides_nothing(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, BEACON_INVITATION_DAYS="10", **HTTP)
    assert run.twilio is not None
    await invite(run, f"{phone(1)},en,Tripoli\n{phone(2)},en,Tripoli\n")
    path = link_of(run, phone(1))
    async with run.beacon.db.read() as conn:
        expiries = (await conn.execute(select(schema.invitation_links.c.expires_at))).scalars().all()
    # it expires when the unanswered invitation is erased
    assert all(timedelta(days=9, hours=23) < aware(e) - datetime.now(UTC) <= timedelta(days=10)
               for e in expiries)

    # a POST without the page's cookie and field: the page again, nothing decided
    forged = await run.client.post(path, data={"decision": "yes"})
    assert forged.status == 403 and shown("en", texts.WEB_AGREE) in await forged.text()
    assert (await run.client.post(path, data={"csrf": "guess", "decision": "yes"})).status == 403
    assert all(not consented for _, _, consented, _, _ in await people(run))

    unknown = await run.client.get("/join/invited/" + "A" * 24)
    assert unknown.status == 404 and shown("en", texts.WEB_LINK_GONE) in await unknown.text()
    assert (await run.client.post("/join/invited/" + "A" * 24, data={"decision": "yes"})).status in (403, 404)

    csrf = csrf_of(await (await run.client.get(path)).text())  # the page opened just before it expires
    async with run.beacon.db.write() as conn:
        await conn.execute(update(schema.invitation_links).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert (await run.client.get(path)).status == 410
    page = await run.client.get(path)  # no cookie needed to see that
    assert page.status == 410
    response = await run.client.post(path, data={"csrf": csrf, "decision": "yes"})
    assert response.status == 410
    assert all(not consented for _, _, consented, _, _ in await people(run))
    assert [len(run.twilio.sent_to(phone(i))) for i in (1, 2)] == [1, 1]
    # the retention sweep removes expired links
    await retention.apply(run.beacon.db, run.settings.retention_policy())
    assert await count(run, schema.invitation_links) == 0
    assert (await run.client.get(path)).status == 404


def test_links_only_with_a_public_url_and_the_invitation_stays_within_four_segments() -> None:
    assert config.load({"BEACON_ENV": "development"}).invitation_link_base is None
    assert config.load({"BEACON_PUBLIC_URL": "https://beacon.example.org"}).invitation_link_base \
        == "https://beacon.example.org"
    url = invitation_links.url("https://beacon.example.org/", invitation_links.new_token()[0])
    assert url.startswith("https://beacon.example.org/join/invited/") and len(url) <= 64
    for language in LANGUAGES:
        text = (gettext_for(language, texts.INVITATION).format(operator="Red Crescent Tripoli Team") + " "
                + gettext_for(language, texts.INVITATION_LINK).format(link=url))
        assert segments(text).segments <= 4, (language, segments(text))


async def test_no_token_or_number_in_the_logs(restore_logging: None, start_beacon: StartBeacon,  # noqa: F811
                                              capfd: pytest.CaptureFixture[str]) -> None:
    configure("json", "debug")  # binds stderr now, while capfd holds it
    run = await start_beacon(twilio=True, BEACON_LOG_LEVEL="debug", **HTTP)
    await invite(run, f"{phone(1)},en,Tripoli\n{phone(2)},en,Tripoli\n")
    path = link_of(run, phone(1))
    await decide(run, path, "yes")
    assert (await run.client.get(path)).status == 410
    assert (await run.client.get(link_of(run, phone(2)))).status == 200
    await settle(run)
    logs = capfd.readouterr().err
    assert "invitation_link.used" in logs
    for secret in (path.rsplit("/", 1)[1], link_of(run, phone(2)).rsplit("/", 1)[1], phone(1), phone(2)):
        assert secret not in logs
