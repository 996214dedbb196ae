"""Outreach sources in the console: an admin creates one and prints its poster; other roles may not."""

from __future__ import annotations

import io
import re

import zxingcpp
from PIL import Image

from beacon.outreach import qr_svg
from bot import texts
from bot.i18n import gettext_for, render
from registry import users
from tests.conftest import SMS_FROM, StartBeacon
from tests.test_console import HTTP, PASSWORD, sign_in


async def test_admin_creates_a_source_and_prints_its_poster(start_beacon: StartBeacon) -> None:
    run = await start_beacon(twilio=True, **HTTP)
    await users.create_user(run.beacon.db, "amal", "admin", PASSWORD)
    csrf = await sign_in(run, "amal")
    made = await run.client.post("/console/sources", allow_redirects=False, data={
        "csrf": csrf, "name": "Airport poster", "code": "air", "area": "tripoli", "language": "ar"})
    assert made.status == 303
    listing = await (await run.client.get("/console/sources")).text()
    assert "Airport poster" in listing and "http://127.0.0.1:8080/join/AIR" in listing and "JOIN AIR" in listing
    taken = await run.client.post("/console/sources", data={"csrf": csrf, "name": "Again", "code": "AIR"})
    assert taken.status == 422 and 'value="Again"' in await taken.text()  # what was typed stays
    source_id = re.search(r"/console/sources/(\d+)/poster", listing)
    assert source_id is not None
    png = await run.client.get(f"/console/sources/{source_id.group(1)}/qr.png")
    assert [d.text for d in zxingcpp.read_barcodes(Image.open(io.BytesIO(await png.read())))] == [
        "http://127.0.0.1:8080/join/AIR"]
    poster = await (await run.client.get(f"/console/sources/{source_id.group(1)}/poster?langs=ar,en,xx&size=A3")
                    ).text()
    assert "@page { size: A3 portrait" in poster
    assert qr_svg("http://127.0.0.1:8080/join/AIR") in poster  # the QR code inline, as SVG
    assert '<section class="block" lang="ar" dir="rtl">' in poster and 'lang="en" dir="ltr"' in poster
    assert 'lang="xx"' not in poster
    for language in ("ar", "en"):
        assert render(language, texts.POSTER_TEXT, keyword="JOIN AIR", number=SMS_FROM) in poster
        assert gettext_for(language, texts.WEB_PROTECTED) in poster


async def test_only_admins_see_sources(start_beacon: StartBeacon) -> None:
    run = await start_beacon(**HTTP)
    await users.create_user(run.beacon.db, "rami", "responder", PASSWORD)
    csrf = await sign_in(run, "rami")
    assert (await run.client.get("/console/sources")).status == 403
    assert (await run.client.post("/console/sources", data={"csrf": csrf, "name": "x", "code": "XX"})).status == 403
    assert (await run.client.get("/console/sources/1/poster")).status == 403
