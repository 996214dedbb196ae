"""Outreach sources in the console (admin): list and create them, see each one's ways in, print its poster."""

from __future__ import annotations

from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup

from beacon.api_sources import add
from beacon.console.web import HERE, area_label, area_tree, page, path_record_id, render, translate
from beacon.context import BEACON
from beacon.outreach import qr_png, qr_svg, ways_in
from bot import texts
from bot.i18n import LANGUAGES, RTL_LANGUAGES
from bot.i18n import render as say
from registry import sources
from registry.sources import Source, SourceError

POSTER = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                            trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
SIZES = ("A4", "A3")


async def _list(request: web.Request, problem: str | None = None, typed: dict[str, str] | None = None,
                status: int = 200) -> web.Response:
    beacon = request.app[BEACON]
    async with beacon.db.read() as conn:
        found = await sources.all_sources(conn)
    items = [{"source": s, "ways": ways_in(beacon, s), "area": area_label(request, s.area_id) if s.area_id else None,
              "language": LANGUAGES.get(s.language or "", None)} for s in found]
    return render(request, "sources.html", {"items": items, "problem": problem, "typed": typed or {},
                                            "areas": area_tree(request), "bot_languages": LANGUAGES}, status=status)


@page("sources")
async def source_list(request: web.Request) -> web.StreamResponse:
    """Every source with its link, keyword, QR code and poster."""
    return await _list(request)


@page("sources")
async def source_create(request: web.Request) -> web.StreamResponse:
    """POST: a new source; the list again with the problem and what was typed when it cannot be made."""
    form = await request.post()
    typed = {k: str(form.get(k, "")).strip() for k in ("name", "code", "area", "language")}
    area = typed["area"] if typed["area"] in request.app[BEACON].gazetteer.areas else None
    language = typed["language"] if typed["language"] in LANGUAGES else None
    try:
        await add(request, typed["name"], typed["code"], area, language)
    except SourceError as exc:
        problem = translate(request, "This code is already used.") if "already" in exc.message else \
            translate(request, "A code is 2 to 16 letters (A to Z) or digits, and a name is required.")
        return await _list(request, problem, typed, status=422)
    raise web.HTTPSeeOther("/console/sources")


async def _source(request: web.Request) -> Source:
    async with request.app[BEACON].db.read() as conn:
        found = await sources.get(conn, path_record_id(request))
    if found is None:
        raise web.HTTPNotFound()
    return found


@page("sources")
async def source_qr(request: web.Request) -> web.StreamResponse:
    """The source's QR code as PNG, to download."""
    source = await _source(request)
    return web.Response(body=qr_png(ways_in(request.app[BEACON], source).link), content_type="image/png",
                        headers={"Content-Disposition": f'attachment; filename="beacon-{source.code}.png"'})


def poster_languages(raw: str, source: Source) -> list[str]:
    """The poster's languages from ``?langs=ar,en``: known codes, in order, once each; else the source's and English."""
    chosen = [code for code in dict.fromkeys(part.strip() for part in raw.split(",")) if code in LANGUAGES]
    return chosen or list(dict.fromkeys(c for c in (source.language, "en") if c))


@page("sources")
async def source_poster(request: web.Request) -> web.StreamResponse:
    """A printable poster (A4, or A3 with ``size=A3``) in the chosen languages."""
    beacon = request.app[BEACON]
    source = await _source(request)
    ways = ways_in(beacon, source)
    size = request.query.get("size", "A4").upper()
    blocks: list[dict[str, Any]] = []
    for code in poster_languages(request.query.get("langs", ""), source):
        text = {"scan": say(code, texts.POSTER_SCAN), "protected": say(code, texts.WEB_PROTECTED),
                "sms": say(code, texts.POSTER_TEXT, keyword=ways.keyword, number=ways.sms_number)
                if ways.sms_number else None}
        blocks.append({"lang": code, "dir": "rtl" if code in RTL_LANGUAGES else "ltr", **text})
    html = POSTER.get_template("poster.html").render(
        size=size if size in SIZES else "A4", qr=Markup(qr_svg(ways.link)), ways=ways, blocks=blocks,
        title=say(blocks[0]["lang"], texts.WEB_TITLE))
    return web.Response(text=html, content_type="text/html")


def add_routes(app: web.Application) -> None:
    """Mount the source pages."""
    app.router.add_get("/console/sources", source_list)
    app.router.add_post("/console/sources", source_create)
    app.router.add_get("/console/sources/{id}/qr.png", source_qr)
    app.router.add_get("/console/sources/{id}/poster", source_poster)
