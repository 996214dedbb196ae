"""Assisted registration: a phone-friendly page where a fieldworker registers a person met in person.

The fieldworker picks the person's language, reads them the privacy notice shown in that language, and
records their answer; the person then gets a text confirming what was recorded. A fieldworker sees the
people they registered in the last 24 hours and nothing else; every view and registration is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from beacon.console.web import SESSION, area_label, area_tree, forbidden, page, path_record_id, render, translate
from beacon.context import BEACON
from bot import texts
from bot.countries import normalise_phone
from bot.i18n import LANGUAGES, RTL_LANGUAGES, gettext_for
from bot.i18n import render as render_text
from campaigns import assisted
from domain.vocabulary import ChannelKind
from registry import audit
from registry.subject import export

FREE_TEXT_LIMIT = 100  # characters kept of a name, an employer or an agency
PHONE_CHANNELS = (ChannelKind.SMS, ChannelKind.WHATSAPP)


def _channels(request: web.Request) -> list[str]:
    """The phone channels Beacon can send on here (SMS first); SMS when none is configured (development)."""
    configured = {kind for provider in request.app[BEACON].providers.values() for kind in provider.channels}
    return [str(c) for c in PHONE_CHANNELS if c in configured] or [ChannelKind.SMS.value]


def _notice(request: web.Request, language: str) -> list[str]:
    """The privacy notice and consent question exactly as the text conversation says them, in ``language``."""
    beacon = request.app[BEACON]
    bot = beacon.service.bot
    return [render_text(language, texts.NOTICE, operator=bot.operator, months=bot.retention_months),
            gettext_for(language, texts.CONSENT_QUESTION)]


async def _form(request: web.Request, values: dict[str, str], errors: list[str], status: int = 200,
                done: int | None = None) -> web.Response:
    beacon = request.app[BEACON]
    session = request[SESSION]
    now = datetime.now(UTC)
    async with beacon.db.write() as conn:
        mine = await assisted.registered_by(conn, session.actor, now)
        await audit.append(conn, session.actor, "assisted.listed", None, {"shown": len(mine)})
    language = values.get("language") if values.get("language") in LANGUAGES else None
    people = [{"id": row["id"], "language": LANGUAGES.get(row["language"] or "", ""),
               "area": area_label(request, row["area_id"]) if row["area_id"] else "",
               "at": row["created_at"].isoformat()[11:16]} for row in mine]
    return render(request, "assisted.html", {
        "values": values, "errors": errors, "language": language, "bot_languages": LANGUAGES,
        "notice": _notice(request, language) if language else [], "notice_rtl": language in RTL_LANGUAGES,
        "areas": area_tree(request), "channels": _channels(request), "people": people, "done": done,
        "employer_fields": beacon.settings.employer_fields}, status=status)


@page("assisted")
async def assisted_form(request: web.Request) -> web.StreamResponse:
    """GET: the person's language first, then the notice to read out and the form."""
    done = request.query.get("done")
    return await _form(request, {"language": request.query.get("language", "")}, [],
                       done=int(done) if done and done.isdecimal() else None)


@page("assisted")
async def assisted_register(request: web.Request) -> web.StreamResponse:
    """POST: register the person with assisted consent; the form again, with what was typed, on a mistake."""
    beacon = request.app[BEACON]
    form = await request.post()
    values = {name: str(form.get(name) or "").strip() for name in (
        "language", "phone", "channel", "area", "consent", "first_name", "employer", "recruitment_agency")}
    errors = _check(request, values)
    if errors:
        return await _form(request, values, errors, status=400)
    phone = normalise_phone(values["phone"], None)
    assert phone is not None  # checked above
    employer_fields = beacon.settings.employer_fields
    person = assisted.Person(
        phone=phone, channel=values["channel"], language=values["language"], area_id=values["area"],
        first_name=values["first_name"][:FREE_TEXT_LIMIT] or None,
        employer=values["employer"][:FREE_TEXT_LIMIT] or None if employer_fields else None,
        recruitment_agency=values["recruitment_agency"][:FREE_TEXT_LIMIT] or None if employer_fields else None)
    try:
        async with beacon.db.write() as conn:
            registrant_id = await assisted.register(conn, beacon.keys.ring, beacon.service.bot, person,
                                                    by=request[SESSION].actor, now=datetime.now(UTC))
    except assisted.AlreadyRegistered:
        return await _form(request, values, [translate(
            request, "This number is already registered. The person can text MYDATA to see their data or "
                     "UPDATE to change it.")], status=409)
    beacon.sender.wake()
    raise web.HTTPSeeOther(f"/console/assisted?done={registrant_id}")


def _check(request: web.Request, values: dict[str, str]) -> list[str]:
    """What is missing or wrong in the form, in the fieldworker's language."""
    errors = []
    if values["language"] not in LANGUAGES:
        errors.append(translate(request, "Choose the person's language."))
    if normalise_phone(values["phone"], None) is None:
        errors.append(translate(request, "Enter a valid phone number with its country code (+...)."))
    if values["channel"] not in _channels(request):
        errors.append(translate(request, "Choose how the person gets messages."))
    if values["area"] not in request.app[BEACON].gazetteer.areas:
        errors.append(translate(request, "Choose the area."))
    if values["consent"] != "yes":
        errors.append(translate(request, "Read the notice to the person: register them only if they agree."))
    return errors


@page("assisted")
async def assisted_person(request: web.Request) -> web.StreamResponse:
    """One person this fieldworker registered in the last 24 hours; anyone else is 403."""
    beacon = request.app[BEACON]
    registrant_id = path_record_id(request)
    session = request[SESSION]
    async with beacon.db.write() as conn:
        allowed = await assisted.visible(conn, session.actor, registrant_id, datetime.now(UTC))
        await audit.append(conn, session.actor, "assisted.viewed" if allowed else "assisted.refused",
                           str(registrant_id))
        held = await export(conn, beacon.keys.ring, registrant_id) if allowed else {}
    if not allowed:
        return forbidden(request, translate(request, "You can see only the people you registered in the last "
                                                     "24 hours."))
    profile: dict[str, Any] = held.get("registrant", {})
    fields = [(translate(request, "Language"), LANGUAGES.get(profile.get("language") or "", "")),
              (translate(request, "Area"), area_label(request, profile["area_id"]) if profile.get("area_id") else ""),
              (translate(request, "First name"), profile.get("first_name") or "")]
    if beacon.settings.employer_fields:
        fields += [(translate(request, "Employer"), profile.get("employer") or ""),
                   (translate(request, "Recruitment agency"), profile.get("recruitment_agency") or "")]
    contacts = [(i["channel"], i["address"]) for i in held.get("identities", [])]
    return render(request, "assisted_person.html", {"id": registrant_id, "fields": fields, "contacts": contacts})


def add_routes(app: web.Application) -> None:
    """Mount the assisted registration pages."""
    app.router.add_get("/console/assisted", assisted_form)
    app.router.add_post("/console/assisted", assisted_register)
    app.router.add_get("/console/assisted/{id}", assisted_person)
