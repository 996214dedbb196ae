"""The need-help queue, one case with the person's details, and working a case."""

from __future__ import annotations

from aiohttp import web

from beacon.api_broadcasts import CaseChange, apply_case_change
from beacon.console.web import SESSION, area_label, area_tree, language_of, page, path_record_id, render, translate
from beacon.context import BEACON
from bot.countries import country_name
from bot.i18n import LANGUAGES
from campaigns import cases, queries
from domain.vocabulary import CaseStatus, Need
from registry import audit, case_files
from registry.subject import export
from registry.times import iso

CASE_ACTIONS = {"assign": CaseStatus.IN_PROGRESS, "progress": CaseStatus.IN_PROGRESS, "close": CaseStatus.CLOSED,
                "reopen": CaseStatus.OPEN}


@page("cases")
async def case_list(request: web.Request) -> web.StreamResponse:
    """The need-help queue with filters; no personal details here."""
    beacon = request.app[BEACON]
    asked = request.query.get("status", CaseStatus.OPEN)
    # "all", or anything unknown, lists every status
    status = asked if asked in CaseStatus.__members__.values() else None
    area = request.query.get("area") if request.query.get("area") in beacon.gazetteer.areas else None
    category = request.query.get("category") if request.query.get("category") in Need.__members__.values() else None
    mine = request.query.get("mine") == "1"
    async with beacon.db.read() as conn:
        rows = await cases.find(conn, status=status, category=category,
                                area_ids=beacon.gazetteer.descendants([area]) if area else None)
    me = request[SESSION].name
    if mine:
        rows = [row for row in rows if row.assignee == me]
    items = [{"id": row.id, "area": area_label(request, row.area_id) if row.area_id else "",
              "category": row.category, "status": row.status, "assignee": row.assignee,
              "created_at": iso(row.created_at), "broadcast_id": row.broadcast_id} for row in rows]
    return render(request, "cases.html", {"items": items, "areas": area_tree(request), "categories": tuple(Need),
                                          "statuses": tuple(CaseStatus), "filters": {
                                              "status": status or "", "area": area or "", "category": category or "",
                                              "mine": mine}, "me": me})


@page("cases")
async def case_page(request: web.Request) -> web.StreamResponse:
    """One case with the registrant's details; every view is written to the audit log."""
    beacon = request.app[BEACON]
    case_id = path_record_id(request)
    session = request[SESSION]
    async with beacon.db.write() as conn:
        row = await queries.case_row(conn, case_id)
        if row is None:
            raise web.HTTPNotFound()
        held = await export(conn, beacon.keys.ring, row.registrant_id)
        await audit.append(conn, session.actor, "case.viewed", str(case_id), {"registrant": row.registrant_id})
        view = case_files.view(beacon.keys.ring, row)
    profile = held.get("registrant", {})
    person = {
        "first_name": profile.get("first_name"),
        "language": LANGUAGES.get(profile.get("language") or "", profile.get("language")),
        "area": area_label(request, profile["area_id"]) if profile.get("area_id") else None,
        "nationality": country_name(profile["nationality"], language_of(request))
        if profile.get("nationality") else None,
        "gender": profile.get("gender"), "age_band": profile.get("age_band"),
        "household_size": profile.get("household_size"),
        "family_contact": profile.get("family_contact"),
        "last_check_in": profile.get("last_check_in"), "last_check_in_at": profile.get("last_check_in_at"),
    }
    contacts = [{"channel": i["channel"] or i["kind"], "address": i["address"], "reachable": i["reachable"]}
                for i in held.get("identities", [])]
    conflict = translate(request, "This case changed meanwhile and cannot do that now; any note you wrote was "
                                  "saved.") if request.query.get("conflict") else None
    return render(request, "case.html", {"case": view, "person": person, "contacts": contacts, "conflict": conflict,
                                         "language_code": profile.get("language") or "",
                                         "area": area_label(request, view["area"]) if view["area"] else ""})


@page("cases")
async def case_action(request: web.Request) -> web.StreamResponse:
    """POST: assign to me, add a note, move or close a case."""
    case_id = path_record_id(request)
    form = await request.post()
    action = str(form.get("action") or "")
    note = str(form.get("note") or "").strip() or None
    if action not in CASE_ACTIONS and not (action == "note" and note):
        raise web.HTTPSeeOther(f"/console/cases/{case_id}")
    beacon, actor = request.app[BEACON], request[SESSION].actor
    try:
        if note and action != "note":  # the note is kept whatever happens to the rest of the change
            await apply_case_change(beacon, case_id, actor, CaseChange(note=note[:2000]))
            note = None
        change = CaseChange.model_validate({"status": CASE_ACTIONS.get(action), "note": note[:2000] if note else None,
                                            "assignee": request[SESSION].name if action == "assign" else None})
        await apply_case_change(beacon, case_id, actor, change)
    except cases.CaseError as exc:
        if "no such" in str(exc):
            raise web.HTTPNotFound() from None
        raise web.HTTPSeeOther(f"/console/cases/{case_id}?conflict=1") from None
    raise web.HTTPSeeOther(f"/console/cases/{case_id}")


def add_routes(app: web.Application) -> None:
    """Mount the case pages."""
    app.router.add_get("/console/cases", case_list)
    app.router.add_get("/console/cases/{id}", case_page)
    app.router.add_post("/console/cases/{id}", case_action)
