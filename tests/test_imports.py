"""Importing lists end to end: an XLSX and CSVs in, a report and invitations out through the Twilio double, the
invited people's answers back in through the signed webhook."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from bot import texts
from bot.i18n import render
from campaigns import imports
from campaigns.import_file import ImportFileError, parse_mapping, read_table
from registry import retention, schema, tokens, users
from tests.conftest import Running, StartBeacon
from tests.helpers import settle
from tests.test_console import PASSWORD, sign_in

MAPPING = {"phone": "Phone", "language": "Lang", "area": "Region", "first_name": "Name"}
LANGUAGES = ("Arabic", "fr", "English", "العربية")  # by English name, code, code again, own name


def phone(i: int) -> str:
    return f"+21891{2000000 + i}"


def xlsx(rows: list[tuple[Any, ...]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(("Phone", "Lang", "Region", "Name"))
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def thousand_rows() -> list[tuple[Any, ...]]:
    """1,000 rows: 20 bad numbers, 10 repeated numbers, 25 unknown areas, 8 unknown languages, numbers
    written three ways (international, national with 0, a spreadsheet number)."""
    rows: list[tuple[Any, ...]] = []
    for i in range(1000):
        number: Any = (phone(i), f"091{2000000 + i}", 912000000 + i)[i % 3]
        if i % 50 == 7:
            number = "12ab"
        elif i % 100 == 20:
            number = phone(i - 1)
        language = "Klingon" if i % 125 == 11 else LANGUAGES[i % 4]
        area = "Atlantis" if i % 40 == 3 else ("Tripoli", "benghazi", "LY0106")[i % 3]
        rows.append((number, language, area, f"Name{i}" if i % 2 else None))
    return rows


async def count(run: Running, table: Any, *where: Any) -> int:
    async with run.beacon.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


async def run_import(run: Running, content: bytes, mapping: dict[str, str] | None = None,
                     legal_basis: str = "consent") -> imports.Report:
    beacon = run.beacon
    _, report = await imports.run(beacon.db, beacon.keys.ring, beacon.service.bot, read_table(content),
                                  mapping or MAPPING, region="LY", legal_basis=legal_basis, by="admin-test")
    beacon.sender.wake()
    return report


async def say(run: Running, sender: str, text: str) -> list[str]:
    """One signed inbound SMS; the bodies of the messages then sent to that sender."""
    assert run.twilio is not None
    before = len(run.twilio.sent_to(sender))
    assert (await run.twilio_inbound(sender, text)).status == 200
    await settle(run)
    return [m.body for m in run.twilio.sent_to(sender)[before:]]


@pytest.mark.slow
async def test_an_xlsx_of_1000_rows_imports_with_an_exact_report_and_invitations_queued(
        start_beacon: StartBeacon, database_url: str) -> None:
    run = await start_beacon(twilio=True, BEACON_DATABASE_URL=database_url, BEACON_OPERATOR_NAME="Consulate X")
    assert run.twilio is not None
    for i in (100, 200):  # already registered by text: reported, not invited again
        await say(run, phone(i), "JOIN")
    already = len(run.twilio.messages)
    report = await run_import(run, xlsx(thousand_rows()))
    assert report.counts() == {"rows": 1000, "ok": 968, "imported": 968, "already_imported": 0, "bad_numbers": 20,
                               "duplicates_in_file": 10, "duplicates_in_registry": 2, "unknown_areas": 25,
                               "unknown_languages": 8}
    assert report.bad_numbers == [i + 2 for i in range(1000) if i % 50 == 7]  # spreadsheet rows: the header is 1
    assert report.duplicates_in_file[0] == (22, 21)
    assert report.duplicates_in_registry == [102, 202]
    await settle(run, timeout=120)
    invitations = run.twilio.messages[already:]
    assert len(invitations) == 968
    assert len({m.to for m in invitations}) == 968
    expected = {language: render(language, texts.INVITATION, operator="Consulate X") for language in ("ar", "fr", "en")}
    assert {m.body for m in invitations} == set(expected.values())
    assert [m.body for m in run.twilio.sent_to(phone(0))] == [expected["ar"]]  # "Arabic"
    assert [m.body for m in run.twilio.sent_to(phone(1))] == [expected["fr"]]  # "fr"
    assert [m.body for m in run.twilio.sent_to(phone(3))] == [expected["ar"]]  # "العربية"
    assert [m.body for m in run.twilio.sent_to(phone(11))] == [expected["ar"]]  # unknown: the number's language
    assert not run.twilio.sent_to(phone(7)) and len(run.twilio.sent_to(phone(19))) == 1
    r = schema.registrants.c
    assert await count(run, schema.registrants, r.step == "invited") == 968
    assert await count(run, schema.registrants, r.step == "invited", r.area_id.is_(None)) == 25
    assert await count(run, schema.registrants, r.area_id == "tripoli", r.step == "invited") > 300  # by P-code too
    assert await count(run, schema.profile_secrets) == 480  # the names of odd rows (bad numbers are odd), sealed


async def test_invited_people_answer_yes_or_stop_and_a_broadcast_reaches_only_who_may_get_it(
        start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    assert run.twilio is not None
    csv = ("Phone,Lang,Region\n"
           f"{phone(1)},en,Tripoli\n{phone(2)},ar,\n{phone(3)},en,Tripoli\n{phone(4)},en,Tripoli\n").encode()
    await run_import(run, csv, {"phone": "Phone", "language": "Lang", "area": "Region"})
    await run_import(run, f"Phone,Region\n{phone(5)},Tripoli\n".encode(), {"phone": "Phone", "area": "Region"},
                     legal_basis="vital_interests")
    await settle(run)
    assert [len(run.twilio.sent_to(phone(i))) for i in range(1, 6)] == [1, 1, 1, 1, 1]

    # YES with an area from the list: registered, on to the optional questions
    assert await say(run, phone(1), "YES") == [render("en", texts.REGISTERED), render("en", texts.ASK_FIRST_NAME)]
    consent = schema.consents.c
    async with run.beacon.db.read() as conn:
        method, notice = (await conn.execute(select(consent.method, consent.notice_version))).one()
    assert (method, notice) == ("import-invitation", run.beacon.service.bot.notice_version)
    # YES without an area: the area question, as in the text conversation
    assert (await say(run, phone(2), "نعم"))[0].startswith(render("ar", texts.AREA_QUESTION, menu="").rstrip())
    # STOP: nothing more, ever
    assert await say(run, phone(3), "STOP") == [render("en", texts.STOPPED)]
    # something else: the invitation's two answers again
    assert await say(run, phone(4), "who are you?") == [render("en", texts.INVITATION_UNCLEAR)]

    secret = await tokens.create(run.beacon.db, "responder", "resp")
    created = await run.client.post("/api/v1/broadcasts", headers={"Authorization": f"Bearer {secret}"},
                                    json={"text": {"en": "Flood warning"}, "audience": {}, "check_in": False})
    assert created.status == 201
    await settle(run)
    got = [any("Flood warning" in m.body for m in run.twilio.sent_to(phone(i))) for i in range(1, 6)]
    # 1 consented; 2 has no area yet; 3 said STOP; 4 never said yes; 5 was imported for vital interests
    assert got == [True, False, False, False, True]
    # a check-in: the question goes only to who consented; the invited person gets the warning alone
    created = await run.client.post("/api/v1/broadcasts", headers={"Authorization": f"Bearer {secret}"},
                                    json={"text": {"en": "Storm tonight"}, "audience": {}, "check_in": True})
    assert created.status == 201
    await settle(run)
    assert run.twilio.sent_to(phone(1))[-1].body == "Storm tonight\n" + render("en", texts.CHECKIN_QUESTION)
    assert run.twilio.sent_to(phone(5))[-1].body == "Storm tonight"
    assert await say(run, phone(5), "2") == [render("ar", texts.INVITATION_UNCLEAR)]  # no yes, no no (in Arabic: LY)


async def test_no_means_nothing_kept_but_the_opt_out_marker(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    await run_import(run, f"Phone,Lang,Region,Name\n{phone(1)},en,Tripoli,Amal\n".encode())  # all four columns
    await settle(run)
    assert await say(run, phone(1), "NO") == [render("en", texts.NO_CONSENT)]
    r, i = schema.registrants.c, schema.identities.c
    assert await count(run, schema.registrants, r.opted_out.is_(True), r.area_id.is_(None)) == 1
    assert await count(run, schema.identities, i.address_ct == b"") == 1
    assert await count(run, schema.profile_secrets) == 0
    # the same number in a later list is not invited again
    report = await run_import(run, f"Phone\n{phone(1)}\n".encode(), {"phone": "Phone"})
    assert report.duplicates_in_registry == [2] and report.imported == 0


@pytest.mark.slow
async def test_a_dry_run_stores_nothing(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True)
    tables = (schema.imports, schema.import_rows, schema.registrants, schema.identities, schema.outbox,
              schema.audit_log, schema.profile_secrets)
    before = [await count(run, t) for t in tables]
    beacon = run.beacon
    report = await imports.check(beacon.db, beacon.keys.ring, beacon.service.bot, read_table(xlsx(thousand_rows())),
                                 MAPPING, "LY")
    assert report.counts()["ok"] == 970 and report.imported == 0
    assert [await count(run, t) for t in tables] == before


async def test_an_interrupted_import_resumes_without_inviting_anyone_twice(
        start_beacon: StartBeacon, monkeypatch: pytest.MonkeyPatch) -> None:
    run = await start_beacon(twilio=True)
    assert run.twilio is not None
    content = xlsx([(phone(i), "en", "Tripoli", None) for i in range(30)] + [("bad", "en", "Tripoli", None)])
    monkeypatch.setattr(imports, "BATCH", 10)
    original = imports._store_batch
    calls = 0

    async def failing(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("the machine went down")
        await original(*args)

    monkeypatch.setattr(imports, "_store_batch", failing)
    with pytest.raises(RuntimeError):
        await run_import(run, content)
    assert await count(run, schema.import_rows) == 10  # the first batch; the failed one stored nothing
    assert await count(run, schema.registrants) == 10
    report = await run_import(run, content)
    assert (report.imported, len(report.already_imported), report.bad_numbers) == (20, 10, [32])
    await settle(run)
    assert len(run.twilio.messages) == 30 and len({m.to for m in run.twilio.messages}) == 30
    m = schema.imports.c
    async with run.beacon.db.read() as conn:
        status, counts = (await conn.execute(select(m.status, m.counts))).one()
    assert status == "done" and counts["imported_total"] == 30
    again = await run_import(run, content)
    assert again.imported == 0 and len(again.already_imported) == 30
    actions = [a for a in await audit_actions(run) if a.startswith("import.")]
    assert actions == ["import.started", "import.run", "import.run"]


async def audit_actions(run: Running) -> list[str]:
    async with run.beacon.db.read() as conn:
        return list((await conn.execute(select(schema.audit_log.c.action).order_by(schema.audit_log.c.seq)))
                    .scalars().all())


async def test_unanswered_invitations_are_erased_after_the_set_days(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, BEACON_INVITATION_DAYS="10")
    await run_import(run, f"Phone,Region\n{phone(1)},Tripoli\n{phone(2)},Tripoli\n{phone(3)},Tripoli\n".encode(),
                     {"phone": "Phone", "area": "Region"})
    await settle(run)
    await say(run, phone(1), "YES")
    await say(run, phone(2), "STOP")
    policy = run.settings.retention_policy()
    assert policy.invitation_days == 10
    r = schema.registrants.c
    soon = await retention.apply(run.beacon.db, policy)
    assert soon.invitations_expired == 0
    later = await retention.apply(run.beacon.db, policy, now=retention.datetime.now(retention.UTC)
                                  + retention.timedelta(days=11))
    assert later.invitations_expired == 2
    assert await count(run, schema.registrants) == 2  # the one who said yes, and the STOP marker
    assert await count(run, schema.registrants, r.opted_out.is_(True), r.step == "new") == 1


def test_the_mapping_and_the_file_are_checked_before_anything_runs(tmp_path: Path) -> None:
    assert parse_mapping("phone=Phone, language = Lang") == {"phone": "Phone", "language": "Lang"}
    with pytest.raises(ImportFileError, match="unknown field 'passport'"):
        parse_mapping("passport=Passport")
    with pytest.raises(ImportFileError, match="UTF-8"):
        read_table("Phone\n\xe9".encode("latin-1"))
    table = read_table(b"Phone;Lang\n+218912000001;ar\n")
    assert table.header == ("Phone", "Lang") and table.rows == (("+218912000001", "ar"),)


async def test_an_admin_imports_from_the_console_with_a_mapping_step_and_a_dry_run(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, BEACON_PUBLIC_URL="http://127.0.0.1:8080")
    assert run.twilio is not None
    for name, role in (("root", "admin"), ("resp", "responder")):
        await users.create_user(run.beacon.db, name, role, PASSWORD)
    await sign_in(run, "resp")
    assert (await run.client.get("/console/imports")).status == 403
    run.client.session.cookie_jar.clear()
    csrf = await sign_in(run, "root")
    data = aiohttp.FormData()
    data.add_field("csrf", csrf)
    data.add_field("region", "LY")
    data.add_field("legal_basis", "vital_interests")
    data.add_field("file", xlsx([(phone(1), "ar", "Tripoli", None), ("bad", "ar", "Tripoli", None),
                                 (phone(1), "ar", "Misrata", None), (phone(2), "en", "Atlantis", "Sam")]),
                   filename="list.xlsx")
    mapping_page = await (await run.client.post("/console/imports", data=data)).text()
    token = re.search(r'name="token" value="([^"]+)"', mapping_page)
    assert token and '<option value="Phone" selected>' in mapping_page  # a first guess at the mapping
    form = {"csrf": csrf, "token": html.unescape(token.group(1)), "map_phone": "Phone", "map_language": "Lang",
            "map_area": "Region"}
    report = await (await run.client.post("/console/imports/check", data=form)).text()
    assert "bad phone numbers: 1 - rows 3" in report and "duplicates within the file: 1 - rows 4 (as row 2)" in report
    assert await count(run, schema.registrants) == 0  # the dry run stored nothing
    response = await run.client.post("/console/imports/run", data=form, allow_redirects=False)
    assert response.status == 303
    await settle(run)
    assert len(run.twilio.messages) == 2
    # BEACON_PUBLIC_URL is set: each invitation ends with its own link
    assert len({m.body.rsplit(" ", 1)[1] for m in run.twilio.messages if "/join/invited/" in m.body}) == 2
    past = await (await run.client.get("/console/imports")).text()
    assert "vital interests" in past.split('id="past"')[1]  # the legal basis is shown with the import
    r = schema.registrants.c
    assert await count(run, schema.registrants, r.legal_basis == "vital_interests", r.step == "invited") == 2
    m = schema.imports.c
    async with run.beacon.db.read() as conn:
        by, basis = (await conn.execute(select(m.imported_by, m.legal_basis))).one()
    assert (by, basis) == ("user:root", "vital_interests")
    # the upload is gone once imported
    assert (await run.client.post("/console/imports/run", data=form)).status == 400
