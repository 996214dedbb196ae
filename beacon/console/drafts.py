"""Drafts a CAP alert made: listed for review, shown with who they reach and the cost, sent or discarded.

Sending goes through the API's own path (:func:`beacon.api_broadcasts.send_draft`), audited with the
responder; a draft the sender withdrew (CAP Cancel) can no longer be sent.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from beacon.api_broadcasts import BroadcastIn, preview_of, send_draft
from beacon.console.compose import samples_of
from beacon.console.web import SESSION, area_label, page, path_record_id, render, translate
from beacon.context import BEACON
from bot.i18n import LANGUAGES
from bot.texts import N_
from campaigns import broadcasts, cap


def cap_state(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """What the CAP messages of a draft say: its headline (the latest), sender, and whether it was changed
    by an Update or withdrawn by a Cancel."""
    headline = next((m["headline"] for m in reversed(messages) if m["headline"] and m["outcome"] != "withdrawn"), "")
    return {"headline": headline, "sender": messages[0]["sender"] if messages else "",
            "updated": sum(1 for m in messages if m["outcome"] == "updated"),
            "withdrawn": any(m["outcome"] == "withdrawn" for m in messages),
            "received_at": messages[0]["received_at"] if messages else ""}


def listed(request: web.Request, draft: dict[str, Any]) -> dict[str, Any]:
    """A draft as the broadcasts list shows it."""
    return {**draft, **cap_state(draft["cap"]), "area_names": [area_label(request, a) for a in draft["areas"]]}


async def draft_page(request: web.Request, found: dict[str, Any], error: str | None = None,
                     status: int = 200) -> web.Response:
    """A draft: its texts as each language group will receive them, the areas, recipients and cost, and what
    the CAP messages did; Send and Discard while it is a draft."""
    beacon = request.app[BEACON]
    async with beacon.db.read() as conn:
        messages = await cap.history(conn, found["id"])
    areas = list(found["audience"].get("areas") or [])
    try:
        body: BroadcastIn | None = BroadcastIn.model_validate({"text": found["texts"], "audience": {"areas": areas}})
    except ValidationError:
        body = None  # not a message that could be sent (no text): shown, never sent
    preview = await preview_of(beacon, body) if body else None
    default = beacon.settings.default_language
    return render(request, "draft.html", {
        "b": found, "cap": cap_state(messages), "messages": messages, "preview": preview,
        "samples": samples_of(body, preview, default) if body and preview else [],
        "texts": [{"code": code, "name": LANGUAGES.get(code, code), "text": text}
                  for code, text in found["texts"].items()],
        "area_names": [area_label(request, a) for a in areas], "language_names": LANGUAGES,
        "missing_names": [LANGUAGES.get(c, c) for c in (preview or {}).get("missing_languages", [])],
        "error": error}, status=status)


async def summary_of(request: web.Request) -> dict[str, Any]:
    """The summary of the broadcast (draft or not) the path names; 404 when there is none."""
    async with request.app[BEACON].db.read() as conn:
        found = await broadcasts.summary(conn, path_record_id(request))
    if found is None:
        raise web.HTTPNotFound()
    return found


REFUSED = {
    "withdrawn": N_("The sender withdrew this alert: it cannot be sent."),
    "cancelled": N_("This draft was discarded: it cannot be sent."),
}
SENT_ALREADY = N_("This broadcast is no longer a draft: it was sent already.")


@page("compose")
async def draft_send(request: web.Request) -> web.StreamResponse:
    """POST /console/broadcasts/{id}/send: a responder confirms and sends the draft now (the API's send, audited)."""
    found = await summary_of(request)
    if found["status"] != "draft":
        return await _refused(request, found)
    if (await request.post()).get("confirm") != "on":
        return await draft_page(request, found, translate(
            request, "Tick the box to confirm you checked the texts and the areas."), 422)
    status = await send_draft(request.app[BEACON], found["id"], request[SESSION].actor)
    if status != "draft":  # changed meanwhile (a Cancel, or another responder)
        return await _refused(request, await summary_of(request))
    raise web.HTTPSeeOther(f"/console/broadcasts/{found['id']}")


async def _refused(request: web.Request, found: dict[str, Any]) -> web.Response:
    message = REFUSED.get(found["status"], SENT_ALREADY)
    if found["status"] in ("draft", "withdrawn"):
        return await draft_page(request, found, translate(request, message), 409)
    return render(request, "error.html", {"title": translate(request, message), "status": 409}, status=409)


@page("compose")
async def draft_discard(request: web.Request) -> web.StreamResponse:
    """POST /console/broadcasts/{id}/discard: throw the draft away unsent (audited)."""
    found = await summary_of(request)
    status = await broadcasts.discard(request.app[BEACON].db, found["id"], request[SESSION].actor)
    if status not in ("draft", "withdrawn"):
        return await _refused(request, found)
    raise web.HTTPSeeOther("/console/broadcasts")


def add_routes(app: web.Application) -> None:
    """Mount sending and discarding a draft (its page is the broadcast's)."""
    app.router.add_post("/console/broadcasts/{id}/send", draft_send)
    app.router.add_post("/console/broadcasts/{id}/discard", draft_discard)
