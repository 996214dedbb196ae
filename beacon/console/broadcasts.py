"""Broadcasts: the latest with their tallies (and the drafts to review), one with live tallies (a poll's answers
suppressed as the stats API publishes them), and stopping what has not left yet."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from beacon import api_stats
from beacon.console import drafts
from beacon.console.web import SESSION, area_label, language_of, page, path_record_id, render, translate
from beacon.context import BEACON
from bot.i18n import LANGUAGES, RTL_LANGUAGES
from bot.polls import localised
from campaigns import broadcasts, cap, queries
from registry import aggregates, exports

LATEST = 50
UNSENT = ("draft", "withdrawn")
NO_ANSWER = "no_reply"  # a poll's recipients who did not answer, as its stats table names them


@page("broadcasts")
async def broadcast_list(request: web.Request) -> web.StreamResponse:
    """The drafts to review, and the latest broadcasts."""
    async with request.app[BEACON].db.read() as conn:
        items = await queries.latest_broadcasts(conn, LATEST)
        waiting = await cap.drafts(conn, LATEST)
    return render(request, "broadcasts.html", {"items": [b for b in items if b["status"] not in UNSENT],
                                               "drafts": [drafts.listed(request, d) for d in waiting]})


async def poll_counts(request: web.Request, found: dict[str, Any]) -> dict[str, int | None]:
    """A poll's answers ("poll_1" .. "poll_n", "poll_no_reply") as ``GET /api/v1/stats/polls/{id}`` publishes them:
    the answer totals of its table, small counts withheld (None). Replaces the raw tally in the counts."""
    counts = found["counts"]
    counts.pop("poll", None)
    if not found.get("poll"):
        return {}
    beacon = request.app[BEACON]
    query = aggregates.poll_query(None, None, found["id"], beacon.gazetteer)
    table = exports.as_json(await api_stats.compute(request, query), beacon.settings.min_cell)
    published = {str(entry["answer"]): entry["count"] for entry in table["totals"]
                 if "answer" in entry and len(entry) == 3}  # answer, count, suppressed: summed over the areas
    answers = [str(n) for n in range(1, len(found["poll"]["options"]) + 1)] + [NO_ANSWER]
    polled = {f"poll_{answer}": published.get(answer, 0) for answer in answers}
    counts.update(polled)
    return polled


@page("broadcasts")
async def broadcast_page(request: web.Request) -> web.StreamResponse:
    """One broadcast with live tallies; a draft has its own page."""
    found = await drafts.summary_of(request)
    if found["status"] in UNSENT:
        return await drafts.draft_page(request, found)
    polled = await poll_counts(request, found)
    if polled:  # audited as a read of the stats API is, once for the page (not for each refresh)
        await api_stats.record(request, aggregates.poll_query(None, None, found["id"],
                                                              request.app[BEACON].gazetteer).describe())
    texts = [{"code": code, "name": LANGUAGES.get(code, code), "rtl": code in RTL_LANGUAGES, "text": text}
             for code, text in found["texts"].items()]
    nothing_left = translate(request, "Nothing was left to stop: every message had already gone.") \
        if request.query.get("nothing_left") else None
    return render(request, "broadcast.html", {"b": found, "texts": texts, "nothing_left": nothing_left,
                                              "poll": poll_rows(request, found),
                                              "min_cell": request.app[BEACON].settings.min_cell,
                                              "area_names": [area_label(request, a) for a in found["audience"].get(
                                                  "areas", [])]})


@page("broadcasts")
async def broadcast_tallies(request: web.Request) -> web.StreamResponse:
    """The tallies as JSON, for the page to refresh itself."""
    found = await drafts.summary_of(request)
    await poll_counts(request, found)
    return web.json_response({"status": found["status"], "counts": found["counts"]})


def poll_rows(request: web.Request, found: dict[str, Any]) -> dict[str, Any] | None:
    """The poll's question and options in the reader's language (else the broadcast's default), for the tally."""
    poll = found.get("poll")
    if not poll:
        return None
    lang, default = language_of(request), request.app[BEACON].settings.default_language
    return {"question": localised(poll["question"], lang, default),
            "options": [(f"poll_{n}", n, localised(option, lang, default))
                        for n, option in enumerate(poll["options"], 1)]}


@page("broadcasts")
async def broadcast_cancel(request: web.Request) -> web.StreamResponse:
    """POST: stop what has not left yet."""
    broadcast_id = path_record_id(request)
    before = await drafts.summary_of(request)
    withdrawn = await broadcasts.cancel(request.app[BEACON].db, broadcast_id, request[SESSION].actor)
    if withdrawn is None:
        raise web.HTTPNotFound()
    stopped = before["status"] in ("scheduled", "sending") or withdrawn
    raise web.HTTPSeeOther(f"/console/broadcasts/{broadcast_id}" + ("" if stopped else "?nothing_left=1"))


def add_routes(app: web.Application) -> None:
    """Mount the broadcast pages (sending one is the compose pages' part)."""
    app.router.add_get("/console/broadcasts", broadcast_list)
    app.router.add_get("/console/broadcasts/{id}", broadcast_page)
    app.router.add_get("/console/broadcasts/{id}/tallies", broadcast_tallies)
    app.router.add_post("/console/broadcasts/{id}/cancel", broadcast_cancel)
