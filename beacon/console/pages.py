"""The console's pages: sign-in, overview, compose and preview, broadcasts, cases, aggregates, audit."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy import func, select

from beacon import api_reports, api_stats
from beacon.api_broadcasts import BroadcastIn, CaseChange, apply_case_change, preview_of
from beacon.console.i18n import CONSOLE_LANGUAGES
from beacon.console.throttle import Throttle
from beacon.console.web import (
    COOKIE,
    LOGIN_COOKIE,
    SESSION,
    client_address,
    forbidden,
    language_of,
    may_see,
    render,
    set_cookie,
    translate,
)
from beacon.context import BEACON
from beacon.http import record_id
from bot.countries import country_name
from bot.i18n import LANGUAGES, RTL_LANGUAGES
from bot.texts import N_
from campaigns import broadcasts, cases, reports
from domain.vocabulary import Need
from registry import aggregates, audit, schema, users
from registry.aggregates import StatsQuery
from registry.disclosure import ALL, Entry, Table
from registry.subject import export
from registry.times import iso

THROTTLE = web.AppKey("console_throttle", Throttle)
STATS_DIMENSIONS = ("area", "nationality", "gender", "age_band", "language", "channel", "status")


def _page(page: str) -> Any:
    """Only roles that may open ``page`` get the handler; others a 403 page."""

    def wrap(handler: Any) -> Any:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not may_see(request[SESSION].role, page):
                return forbidden(request, translate(request, "Your role does not give access to this page."))
            return await handler(request)

        guarded.__doc__ = handler.__doc__
        return guarded

    return wrap



def _id(request: web.Request) -> int:
    """The record id in the path; 404 for anything that cannot be one."""
    found = record_id(request.match_info["id"])
    if found is None:
        raise web.HTTPNotFound()
    return found


def _safe_next(target: str | None) -> str:
    """Only a console path is a place to go back to after signing in."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/overview"


# -- signing in and out ----------------------------------------------------------------------------------

async def root(request: web.Request) -> web.StreamResponse:
    """The console's front door."""
    raise web.HTTPSeeOther("/console/overview")


async def login_page(request: web.Request, *, error: str | None = None, status: int = 200,
                     notice: str | None = None) -> web.StreamResponse:
    """The sign-in form, with a fresh double-submit token against cross-site sign-in."""
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", {"login_csrf": token, "error": error, "notice": notice,
                                              "next": _safe_next(request.query.get("next"))}, status=status)
    set_cookie(response, request.app[BEACON].settings, LOGIN_COOKIE, token, max_age=3600)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    """GET /console/login."""
    notice = None
    if request.query.get("signed_out"):
        notice = translate(request, "You have signed out.")
    elif request.query.get("expired"):
        notice = translate(request, "Your session ended, so the form you sent was not saved. Sign in and "
                                    "do it again.")
    return await login_page(request, notice=notice)


async def login(request: web.Request) -> web.StreamResponse:
    """POST /console/login: a username and password, or an API token."""
    beacon = request.app[BEACON]
    form = await request.post()
    given = form.get("csrf")
    expected = request.cookies.get(LOGIN_COOKIE)
    if not expected or not users.same_token(given if isinstance(given, str) else None, expected):
        return forbidden(request, translate(request, "This form has expired. Go back, reload the page "
                                                     "and try again."))
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    token = str(form.get("token") or "").strip()
    if not token and not (username and password):  # nothing to check: not an attempt
        return await login_page(request, status=400, error=translate(
            request, "Enter your username and password, or an API token."))
    checked = await request.app[THROTTLE].sign_in(beacon.db, client_address(request), username=username,
                                                  password=password, token=token)
    if checked.wait:
        minutes = max(1, round(checked.wait / 60))
        return await login_page(request, status=429, error=translate(
            request, "Too many failed sign-in attempts. Try again in {minutes} minutes.", minutes=minutes))
    actor, role = checked.actor, checked.role
    if actor is None or role is None:
        return await login_page(request, status=401, error=translate(
            request, "The username and password, or the token, are not right."))
    language = str(form.get("lang") or language_of(request))
    cookie, _ = await users.open_session(beacon.db, actor, role, language if language in CONSOLE_LANGUAGES else "en")
    response = web.HTTPSeeOther(_safe_next(str(form.get("next") or "")))
    set_cookie(response, beacon.settings, COOKIE, cookie, max_age=int(users.LIFETIME.total_seconds()))
    response.del_cookie(LOGIN_COOKIE, path="/console")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /console/logout."""
    await users.close_session(request.app[BEACON].db, request[SESSION].id_hash)
    response = web.HTTPSeeOther("/console/login?signed_out=1")
    response.del_cookie(COOKIE, path="/console")
    raise response


async def choose_language(request: web.Request) -> web.StreamResponse:
    """POST /console/language: the console's language for this session."""
    form = await request.post()
    language = str(form.get("lang") or "")
    if language in CONSOLE_LANGUAGES:
        await users.set_language(request.app[BEACON].db, request[SESSION], language)
    raise web.HTTPSeeOther(_safe_next(str(form.get("back") or "")))


# -- overview --------------------------------------------------------------------------------------------

async def area_table(request: web.Request, exact: bool) -> Table:
    """Registered people by top-level area: exact for responders, suppressed for everyone else."""
    beacon = request.app[BEACON]
    query = StatsQuery(("area",), 0)
    if not exact:
        return (await api_stats.build(beacon.db, beacon.gazetteer, query, beacon.settings.min_cell)).table
    counts = await aggregates.count(beacon.db, beacon.gazetteer, query)
    cells = tuple(Entry(key, value, False) for key, value in sorted(counts.cells.items(), key=lambda kv: -kv[1]))
    return Table(("area",), 1, cells, (), Entry((ALL,), sum(counts.cells.values()), False))


def area_label(request: web.Request, area_id: str) -> str:
    area = request.app[BEACON].gazetteer.areas.get(area_id)
    if area is None:
        return translate(request, "Not given") if area_id == aggregates.UNKNOWN else area_id
    return area.name(language_of(request))


@_page("overview")
async def overview(request: web.Request) -> web.StreamResponse:
    """Registered people by area on a map, and the latest broadcasts with their tallies."""
    beacon = request.app[BEACON]
    role = request[SESSION].role
    exact = may_see(role, "broadcasts")
    table = await area_table(request, exact)
    latest: list[dict[str, Any]] = []
    open_cases = broadcast_count = 0
    if exact:
        b, c = schema.broadcasts.c, schema.cases.c
        async with beacon.db.read() as conn:
            ids = (await conn.execute(select(b.id).order_by(b.id.desc()).limit(5))).scalars().all()
            latest = [found for i in ids if (found := await broadcasts.summary(conn, int(i)))]
            open_cases = int((await conn.execute(select(func.count()).select_from(schema.cases).where(
                c.status != "closed"))).scalar_one())
            broadcast_count = int((await conn.execute(
                select(func.count()).select_from(schema.broadcasts))).scalar_one())
    rows = [(area_label(request, e.key[0]), e.count) for e in table.cells]
    return render(request, "overview.html", {
        "exact": exact, "rows": rows, "total": table.total.count, "min_cell": beacon.settings.min_cell,
        "map": Markup(api_stats.svg_map(  # noqa: S704 - built from escaped parts
            beacon.gazetteer, table, language=language_of(request), withheld=translate(request, "withheld"),
            caption=translate(request, "Registered people by area"),
            reference=[beacon.gazetteer.areas[a] for a in beacon.gazetteer.top_level])),
        "latest": latest, "open_cases": open_cases, "broadcasts": broadcast_count,
    })


# -- compose, preview, send ------------------------------------------------------------------------------

def area_tree(request: web.Request) -> list[tuple[str, str, int]]:
    """The gazetteer as (id, name in the reader's language, depth), each area followed by those below it."""
    gazetteer, lang = request.app[BEACON].gazetteer, language_of(request)
    tree: list[tuple[str, str, int]] = []

    def walk(parent: str | None, depth: int) -> None:
        children = sorted((a for a in gazetteer.areas.values() if a.parent == parent), key=lambda a: a.name(lang))
        for area in children:
            tree.append((area.id, area.name(lang), depth))
            walk(area.id, depth + 1)

    walk(None, 0)
    return tree


async def audience_options(request: web.Request) -> dict[str, Any]:
    """What the audience picker offers: areas as a tree, and the languages and nationalities registered."""
    beacon = request.app[BEACON]
    r = schema.registrants.c
    live = (r.consented.is_(True), r.opted_out.is_(False))
    async with beacon.db.read() as conn:
        languages: dict[str, int] = dict((await conn.execute(
            select(r.language, func.count()).where(*live).group_by(r.language))).all())
        nationalities = (await conn.execute(select(r.nationality, func.count()).where(
            *live, r.nationality.is_not(None)).group_by(r.nationality))).all()
    lang = language_of(request)
    registered = sorted(((code, languages.get(code, 0)) for code in LANGUAGES), key=lambda x: (-x[1], x[0]))
    kinds = sorted({kind for provider in beacon.providers.values() for kind in provider.channels})
    return {
        "areas": area_tree(request),
        "text_languages": [{"code": code, "name": LANGUAGES[code], "registered": count, "rtl": code in RTL_LANGUAGES,
                            "check_in": broadcasts.message_for({code: ""}, code, code, True)}
                           for code, count in registered],
        "nationalities": sorted(((code, country_name(code, lang), count) for code, count in nationalities),
                                key=lambda x: x[1]),
        "channels": kinds,
        "default_language": beacon.settings.default_language,
    }


def broadcast_from_form(form: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The API's broadcast body from the compose form, and errors the form itself has."""
    errors: list[tuple[str, str]] = []
    text = {code: str(form.get(f"text_{code}") or "").strip() for code in LANGUAGES}
    raw: dict[str, Any] = {
        "text": {code: value for code, value in text.items() if value},
        "audience": {name: [str(v) for v in form.getall(name, [])]
                     for name in ("areas", "languages", "nationalities", "channels")},
        "check_in": form.get("check_in") == "on",
        "remind_after_minutes": None,
        "send_at": None,
    }
    remind = str(form.get("remind_after_minutes") or "").strip()
    if remind:
        if remind.isascii() and remind.isdigit() and len(remind) <= 6:
            raw["remind_after_minutes"] = int(remind)
        else:
            errors.append(("remind_after_minutes", N_("Give the reminder delay in whole minutes.")))
    send_at = str(form.get("send_at") or "").strip()
    if send_at:
        moment = _moment(send_at)
        if moment is None:
            errors.append(("send_at", FIELD_MESSAGES["send_at"]))
        else:
            raw["send_at"] = moment.isoformat()
    return raw, errors


def _moment(value: Any) -> datetime | None:
    """A sending time (UTC when no offset is given), or None when it is not one."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


AUDIENCE = ("areas", "languages", "nationalities", "channels")


def from_payload(data: Any) -> dict[str, Any] | None:
    """The previewed broadcast carried back by the preview page, if it has the shape the form gave it."""
    if not isinstance(data, dict):
        return None
    text, audience = data.get("text"), data.get("audience") or {}
    if not isinstance(text, dict) or not isinstance(audience, dict):
        return None
    lists = {name: audience.get(name) or [] for name in AUDIENCE}
    remind, send_at, draft = data.get("remind_after_minutes"), data.get("send_at"), data.get("draft")
    if (not all(isinstance(k, str) and isinstance(v, str) for k, v in text.items())
            or not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in lists.values())
            or not (remind is None or (type(remind) is int and 0 <= remind < 10**6))
            or not (send_at is None or _moment(send_at) is not None)
            or not (draft is None or (isinstance(draft, str) and len(draft) <= 64))):
        return None
    return {"text": text, "audience": lists, "check_in": data.get("check_in") is True,
            "remind_after_minutes": remind, "send_at": send_at, "draft": draft}


FIELD_MESSAGES = {
    "text": N_("Write the message in at least one language."),
    "remind_after_minutes": N_("Reminders can be sent between 1 minute and 7 days later."),
    "send_at": N_("Give the sending time as a date and time."),
    "audience.areas": N_("Choose areas from the list."),
}


def validate(request: web.Request, raw: dict[str, Any]) -> tuple[BroadcastIn | None, list[tuple[str, str]]]:
    """The broadcast, or the fields that are wrong (by the API's own rules)."""
    try:
        body = BroadcastIn.model_validate({k: v for k, v in raw.items() if k != "draft"})
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"][:2]) or "body"
            errors.append((field, FIELD_MESSAGES.get(field, error["msg"])))
        return None, errors
    unknown = [a for a in body.audience.areas if a not in request.app[BEACON].gazetteer.areas]
    return (None, [("audience.areas", FIELD_MESSAGES["audience.areas"])]) if unknown else (body, [])


async def compose_page(request: web.Request, raw: dict[str, Any] | None = None,
                       errors: list[tuple[str, str]] | None = None) -> web.Response:
    """The compose form, filled with ``raw`` when coming back from the preview or an error."""
    values = raw or {"text": {}, "audience": {}, "check_in": True, "remind_after_minutes": 60, "send_at": None}
    moment = _moment(values["send_at"]) if values.get("send_at") else None
    send_at = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if moment else None
    messages = [(field, translate(request, message)) for field, message in (errors or [])]
    return render(request, "compose.html", {**await audience_options(request), "values": values,
                                            "send_at": send_at or "", "errors": messages},
                  status=422 if errors else 200)


@_page("compose")
async def compose(request: web.Request) -> web.StreamResponse:
    """GET /console/compose."""
    return await compose_page(request)


@_page("compose")
async def preview(request: web.Request) -> web.StreamResponse:
    """POST /console/compose: check the form and show who will get what, and the cost."""
    raw, errors = broadcast_from_form(await request.post())
    body, invalid = validate(request, raw)
    if body is None or errors:
        return await compose_page(request, raw, errors + invalid)
    beacon = request.app[BEACON]
    found = await preview_of(beacon, body)
    raw["draft"] = secrets.token_urlsafe(16)  # sending this preview twice makes one broadcast
    default = beacon.settings.default_language
    samples = [{"code": item["language"], "name": LANGUAGES.get(item["language"], item["language"]),
                "rtl": item["language"] in RTL_LANGUAGES and item["has_text"],
                "text": broadcasts.message_for(body.text, item["language"], default, body.check_in), **item}
               for item in found["by_language"]]
    return render(request, "preview.html", {
        "preview": found, "samples": samples, "body": body, "payload": json.dumps(raw, ensure_ascii=False),
        "area_names": [area_label(request, a) for a in body.audience.areas],
        "language_names": LANGUAGES,
        "missing_names": [LANGUAGES.get(code, code) for code in found["missing_languages"]],
    })


async def payload(request: web.Request) -> dict[str, Any] | None:
    """The broadcast the preview page carries in its hidden field, as the compose form made it."""
    form = await request.post()
    try:
        return from_payload(json.loads(str(form.get("payload") or "")))
    except ValueError:
        return None


@_page("compose")
async def edit(request: web.Request) -> web.StreamResponse:
    """POST /console/compose/edit: back from the preview to the form, as it was."""
    return await compose_page(request, await payload(request))


@_page("compose")
async def send(request: web.Request) -> web.StreamResponse:
    """POST /console/broadcasts: store the previewed broadcast; it goes now or at its time."""
    raw = await payload(request)
    body, errors = validate(request, raw or {})
    if body is None:
        return await compose_page(request, raw, errors)
    beacon = request.app[BEACON]
    broadcast_id = await broadcasts.create(
        beacon.db, texts_by_language=body.text, audience=broadcasts.Audience.from_json(body.audience.model_dump()),
        check_in=body.check_in, send_at=body.send_at, remind_after_minutes=body.remind_after_minutes,
        created_by=request[SESSION].actor, draft_key=raw.get("draft") if raw else None)
    beacon.runner.wake()
    raise web.HTTPSeeOther(f"/console/broadcasts/{broadcast_id}")


# -- broadcasts ------------------------------------------------------------------------------------------

@_page("broadcasts")
async def broadcast_list(request: web.Request) -> web.StreamResponse:
    """The latest broadcasts."""
    b = schema.broadcasts.c
    async with request.app[BEACON].db.read() as conn:
        ids = (await conn.execute(select(b.id).order_by(b.id.desc()).limit(50))).scalars().all()
        items = [found for i in ids if (found := await broadcasts.summary(conn, int(i)))]
    return render(request, "broadcasts.html", {"items": items})


async def _summary(request: web.Request) -> dict[str, Any]:
    async with request.app[BEACON].db.read() as conn:
        found = await broadcasts.summary(conn, _id(request))
    if found is None:
        raise web.HTTPNotFound()
    return found


@_page("broadcasts")
async def broadcast_page(request: web.Request) -> web.StreamResponse:
    """One broadcast with live tallies."""
    found = await _summary(request)
    texts = [{"code": code, "name": LANGUAGES.get(code, code), "rtl": code in RTL_LANGUAGES, "text": text}
             for code, text in found["texts"].items()]
    nothing_left = translate(request, "Nothing was left to stop: every message had already gone.") \
        if request.query.get("nothing_left") else None
    return render(request, "broadcast.html", {"b": found, "texts": texts, "nothing_left": nothing_left,
                                              "area_names": [area_label(request, a) for a in found["audience"].get(
                                                  "areas", [])]})


@_page("broadcasts")
async def broadcast_tallies(request: web.Request) -> web.StreamResponse:
    """The tallies as JSON, for the page to refresh itself."""
    found = await _summary(request)
    return web.json_response({"status": found["status"], "counts": found["counts"]})


@_page("broadcasts")
async def broadcast_cancel(request: web.Request) -> web.StreamResponse:
    """POST: stop what has not left yet."""
    broadcast_id = _id(request)
    before = await _summary(request)
    withdrawn = await broadcasts.cancel(request.app[BEACON].db, broadcast_id, request[SESSION].actor)
    if withdrawn is None:
        raise web.HTTPNotFound()
    stopped = before["status"] in ("scheduled", "sending") or withdrawn
    raise web.HTTPSeeOther(f"/console/broadcasts/{broadcast_id}" + ("" if stopped else "?nothing_left=1"))


# -- cases -----------------------------------------------------------------------------------------------

@_page("cases")
async def case_list(request: web.Request) -> web.StreamResponse:
    """The need-help queue with filters; no personal details here."""
    beacon = request.app[BEACON]
    asked = request.query.get("status", "open")
    status = asked if asked in cases.STATUSES else None  # "all", or anything unknown, lists every status
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
                                          "statuses": cases.STATUSES, "filters": {
                                              "status": status or "", "area": area or "", "category": category or "",
                                              "mine": mine}, "me": me})


@_page("cases")
async def case_page(request: web.Request) -> web.StreamResponse:
    """One case with the registrant's details; every view is written to the audit log."""
    beacon = request.app[BEACON]
    case_id = _id(request)
    session = request[SESSION]
    async with beacon.db.write() as conn:
        row = (await conn.execute(select(schema.cases).where(schema.cases.c.id == case_id))).first()
        if row is None:
            raise web.HTTPNotFound()
        held = await export(conn, beacon.keys.ring, row.registrant_id)
        await audit.append(conn, session.actor, "case.viewed", str(case_id), {"registrant": row.registrant_id})
        view = cases.view(beacon.keys.ring, row)
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


CASE_ACTIONS = {"assign": "in_progress", "progress": "in_progress", "close": "closed", "reopen": "open"}


@_page("cases")
async def case_action(request: web.Request) -> web.StreamResponse:
    """POST: assign to me, add a note, move or close a case."""
    case_id = _id(request)
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


# -- aggregates and audit --------------------------------------------------------------------------------

@_page("aggregates")
async def aggregates_page(request: web.Request) -> web.StreamResponse:
    """A suppressed table of the chosen breakdown, with the exports."""
    beacon = request.app[BEACON]
    dims = [d for d in request.query.getall("by", []) if d in STATS_DIMENSIONS] or ["area"]
    broadcast = request.query.get("broadcast") or ""
    if "status" in dims and not broadcast.isdigit():
        dims.remove("status")
        dims = dims or ["area"]
    level = request.query.get("level", "0")
    try:
        query = aggregates.parse_query(",".join(dims), level, broadcast if "status" in dims else None,
                                       beacon.gazetteer, ("area",))
        published = await api_stats.build(beacon.db, beacon.gazetteer, query, beacon.settings.min_cell)
        problem = None
    except aggregates.QueryError as exc:
        published, problem = None, exc.message
    rows: list[dict[str, Any]] = []
    if published is not None:
        for entry in published.table.cells:
            rows.append({"labels": [label(request, name, value) for name, value in zip(dims, entry.key, strict=True)],
                         "count": entry.count})
        await api_stats.record(request, query.describe())
    b = schema.broadcasts.c
    async with beacon.db.read() as conn:
        checkins = (await conn.execute(select(b.id, b.created_at).where(b.check_in.is_(True))
                                       .order_by(b.id.desc()).limit(20))).all()
    query_string = f"by={','.join(dims)}&level={level}" + (f"&broadcast={broadcast}" if "status" in dims else "")
    runs: list[dict[str, Any]] = []
    if request[SESSION].role in ("admin", *api_reports.READERS):
        async with beacon.db.read() as conn:
            runs = [reports.run_view(row) for row in await reports.list_runs(conn, status="done", limit=10)]
    return render(request, "aggregates.html", {
        "dims": dims, "all_dims": STATS_DIMENSIONS, "rows": rows, "problem": problem,
        "total": published.table.total.count if published else None, "min_cell": beacon.settings.min_cell,
        "checkins": [(row.id, iso(row.created_at)) for row in checkins], "broadcast": broadcast,
        "level": level, "levels": range(aggregates.max_level(beacon.gazetteer) + 1), "query_string": query_string,
        "runs": runs,
            })


def label(request: web.Request, name: str, value: str) -> str:
    """A dimension value as people read it."""
    if name == "area":
        return area_label(request, value)
    if value == aggregates.UNKNOWN:
        return translate(request, "Not given")
    if name == "nationality":
        return country_name(value, language_of(request))
    if name == "language":
        return LANGUAGES.get(value, value)
    return {"safe": translate(request, "Safe"), "need_help": translate(request, "Needs help"),
            "no_reply": translate(request, "No reply")}.get(value, value)


@_page("audit")
async def audit_page(request: web.Request) -> web.StreamResponse:
    """Audit entries with filters, and a check of the whole chain on request."""
    db = request.app[BEACON].db
    filters = {name: request.query.get(name, "").strip() for name in ("actor", "action", "subject")}
    async with db.read() as conn:
        rows = await audit.entries(conn, actor=filters["actor"] or None, action=filters["action"] or None,
                                   subject=filters["subject"] or None, limit=200)
        verdict = await audit.verify(conn) if request.query.get("verify") else None
    return render(request, "audit.html", {"rows": rows, "verdict": verdict, "filters": filters})


def add_routes(app: web.Application) -> None:
    """Mount the pages."""
    app[THROTTLE] = Throttle()
    add = app.router
    add.add_get("/console", root)
    add.add_get("/console/", root)
    add.add_get("/console/login", login_form)
    add.add_post("/console/login", login)
    add.add_post("/console/logout", logout)
    add.add_post("/console/language", choose_language)
    add.add_get("/console/overview", overview)
    add.add_get("/console/compose", compose)
    add.add_post("/console/compose", preview)
    add.add_post("/console/compose/edit", edit)
    add.add_get("/console/broadcasts", broadcast_list)
    add.add_post("/console/broadcasts", send)
    add.add_get("/console/broadcasts/{id}", broadcast_page)
    add.add_get("/console/broadcasts/{id}/tallies", broadcast_tallies)
    add.add_post("/console/broadcasts/{id}/cancel", broadcast_cancel)
    add.add_get("/console/cases", case_list)
    add.add_get("/console/cases/{id}", case_page)
    add.add_post("/console/cases/{id}", case_action)
    add.add_get("/console/aggregates", aggregates_page)
    # The API's exports, under the console's session (same roles, same suppression, same audit).
    add.add_get("/console/aggregates/stats.csv", api_stats.stats_csv)
    add.add_get("/console/aggregates/stats.geojson", api_stats.stats_geojson)
    add.add_get("/console/aggregates/situation", api_stats.situation_report)
    add.add_get("/console/aggregates/runs/{id}/content", api_reports.run_content)
    add.add_get("/console/audit", audit_page)
