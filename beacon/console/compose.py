"""Writing a broadcast: the compose form, its preview with recipients and cost, and sending it."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from beacon.api_broadcasts import BroadcastIn, preview_of, store
from beacon.console.poll_form import OPTION_ROWS, asked_after_check_in, poll_errors, poll_from_form, valid_shape
from beacon.console.web import SESSION, area_label, area_tree, language_of, page, render, translate
from beacon.context import BEACON
from beacon.http import MAX_ID, record_id
from bot.countries import country_name
from bot.i18n import LANGUAGES, RTL_LANGUAGES
from bot.texts import N_
from campaigns import broadcasts, queries


async def audience_options(request: web.Request) -> dict[str, Any]:
    """What the audience picker offers: areas as a tree, and the languages and nationalities registered."""
    beacon = request.app[BEACON]
    async with beacon.db.read() as conn:
        counted = await queries.registered(conn)
    lang = language_of(request)
    registered = sorted(((code, counted.languages.get(code, 0)) for code in LANGUAGES), key=lambda x: (-x[1], x[0]))
    kinds = sorted({kind for provider in beacon.providers.values() for kind in provider.channels})
    return {
        "areas": area_tree(request),
        "text_languages": [{"code": code, "name": LANGUAGES[code], "registered": count, "rtl": code in RTL_LANGUAGES,
                            "check_in": broadcasts.message_for({code: ""}, code, code, True)}
                           for code, count in registered],
        "nationalities": sorted(((code, country_name(code, lang), count)
                                 for code, count in counted.nationalities.items()), key=lambda x: x[1]),
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
        "poll": poll_from_form(form),
        "replaces": record_id(str(form.get("replaces") or "")),
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
    poll, replaces = data.get("poll"), data.get("replaces")
    if (not all(isinstance(k, str) and isinstance(v, str) for k, v in text.items())
            or not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in lists.values())
            or not (remind is None or (type(remind) is int and 0 <= remind < 10**6))
            or not (send_at is None or _moment(send_at) is not None)
            or not (draft is None or (isinstance(draft, str) and len(draft) <= 64))
            or not valid_shape(poll)
            or not (replaces is None or (type(replaces) is int and 1 <= replaces <= MAX_ID))):
        return None
    return {"text": text, "audience": lists, "check_in": data.get("check_in") is True,
            "remind_after_minutes": remind, "send_at": send_at, "draft": draft, "poll": poll,
            "replaces": replaces}


GONE = N_("The draft was sent, discarded or withdrawn by its sender meanwhile: nothing was sent from this form.")
FIELD_MESSAGES = {
    "text": N_("Write the message in at least one language."),
    "remind_after_minutes": N_("Reminders can be sent between 1 minute and 7 days later."),
    "send_at": N_("Give the sending time as a date and time."),
    "audience.areas": N_("Choose areas from the list."),
    "poll.question": N_("Write the poll's question."),
    "poll.options": N_("A poll needs between two and nine options, each with a text."),
}


def validate(request: web.Request, raw: dict[str, Any]) -> tuple[BroadcastIn | None, list[tuple[Any, ...]]]:
    """The broadcast, or the fields that are wrong (the poll's as the form says them, the rest by the API's rules)."""
    polled: list[tuple[Any, ...]] = list(poll_errors(raw.get("text") or {}, raw.get("poll")))
    try:
        body = BroadcastIn.model_validate({k: v for k, v in raw.items() if k not in ("draft", "replaces")})
    except ValidationError as exc:
        errors = list(polled)
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"][:2]) or "body"
            if field.startswith("poll") and polled:
                continue  # said better above
            if (field, FIELD_MESSAGES.get(field, error["msg"])) not in errors:
                errors.append((field, FIELD_MESSAGES.get(field, error["msg"])))
        return None, errors
    if polled:
        return None, polled
    unknown = [a for a in body.audience.areas if a not in request.app[BEACON].gazetteer.areas]
    return (None, [("audience.areas", FIELD_MESSAGES["audience.areas"])]) if unknown else (body, [])


async def compose_page(request: web.Request, raw: dict[str, Any] | None = None,
                       errors: list[tuple[Any, ...]] | None = None) -> web.Response:
    """The compose form, filled with ``raw`` when coming back from the preview or an error."""
    values = raw or {"text": {}, "audience": {}, "check_in": True, "remind_after_minutes": 60, "send_at": None}
    moment = _moment(values["send_at"]) if values.get("send_at") else None
    send_at = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if moment else None
    messages = [(error[0], translate(request, error[1], **(error[2] if len(error) > 2 else {})))
                for error in (errors or [])]
    options = await audience_options(request)
    poll = values.get("poll") or {"question": {}, "options": []}
    shown = [lang for lang in options["text_languages"]
             if lang["registered"] or values["text"].get(lang["code"]) or lang["code"] == options["default_language"]
             or lang["code"] in poll["question"] or any(lang["code"] in option for option in poll["options"])]
    rows = [poll["options"][n] if n < len(poll["options"]) else {} for n in range(OPTION_ROWS)]
    return render(request, "compose.html", {**options, "values": values, "send_at": send_at or "",
                                            "errors": messages, "poll": poll, "poll_rows": rows,
                                            "poll_languages": shown},
                  status=422 if errors else 200)


@page("compose")
async def compose(request: web.Request) -> web.StreamResponse:
    """GET /console/compose; with ``?draft=<id>``, the form filled with a draft's texts and areas, to edit them
    before sending (sending then replaces the draft)."""
    if "draft" not in request.query:
        return await compose_page(request)
    draft_id = record_id(request.query["draft"])
    async with request.app[BEACON].db.read() as conn:
        found = await broadcasts.summary(conn, draft_id) if draft_id is not None else None
    if found is None:
        raise web.HTTPNotFound()
    if found["status"] != "draft":
        return render(request, "error.html", {"title": translate(request, GONE), "status": 409}, status=409)
    return await compose_page(request, {
        "text": dict(found["texts"]), "audience": {"areas": list(found["audience"].get("areas") or [])},
        "check_in": False, "remind_after_minutes": None, "send_at": None, "poll": None, "replaces": found["id"]})


@page("compose")
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
    return render(request, "preview.html", {
        "preview": found, "samples": samples_of(body, found, default), "body": body,
        "payload": json.dumps(raw, ensure_ascii=False), "body_replaces": raw.get("replaces"),
        "area_names": [area_label(request, a) for a in body.audience.areas],
        "language_names": LANGUAGES,
        "missing_names": [LANGUAGES.get(code, code) for code in found["missing_languages"]],
    })


def samples_of(body: BroadcastIn, found: dict[str, Any], default: str) -> list[dict[str, Any]]:
    """What each language group of the preview will receive, as the fan-out words it (the poll with it, or
    after the check-in answer when the broadcast asks both)."""
    poll = body.poll_json()
    samples = []
    for item in found["by_language"]:
        code = item["language"]
        shown = code if code in body.text else default
        samples.append({"code": code, "name": LANGUAGES.get(code, code),
                        "rtl": code in RTL_LANGUAGES and item["has_text"],
                        "text": broadcasts.message_for(body.text, code, default, body.check_in, poll),
                        "then": asked_after_check_in(poll, body.check_in, code, default, shown), **item})
    return samples


async def payload(request: web.Request) -> dict[str, Any] | None:
    """The broadcast the preview page carries in its hidden field, as the compose form made it."""
    form = await request.post()
    try:
        return from_payload(json.loads(str(form.get("payload") or "")))
    except ValueError:
        return None


@page("compose")
async def edit(request: web.Request) -> web.StreamResponse:
    """POST /console/compose/edit: back from the preview to the form, as it was."""
    return await compose_page(request, await payload(request))


@page("compose")
async def send(request: web.Request) -> web.StreamResponse:
    """POST /console/broadcasts: store the previewed broadcast; it goes now or at its time."""
    raw = await payload(request)
    body, errors = validate(request, raw or {})
    if body is None or raw is None:
        return await compose_page(request, raw, errors)
    beacon, actor = request.app[BEACON], request[SESSION].actor
    if raw.get("replaces") is not None:  # an edited draft: it is discarded, and this is sent in its place
        status = await broadcasts.discard(beacon.db, raw["replaces"], actor, {"edited": True})
        made = await broadcasts.made_from(beacon.db, raw["draft"]) if raw.get("draft") else None
        if made is not None:  # this preview was sent already
            raise web.HTTPSeeOther(f"/console/broadcasts/{made}")
        if status != "draft":
            return await compose_page(request, raw, [("replaces", GONE)])
    broadcast_id = await store(beacon, body, actor, draft_key=raw.get("draft"))
    raise web.HTTPSeeOther(f"/console/broadcasts/{broadcast_id}")


def add_routes(app: web.Application) -> None:
    """Mount the compose form, its preview and sending."""
    app.router.add_get("/console/compose", compose)
    app.router.add_post("/console/compose", preview)
    app.router.add_post("/console/compose/edit", edit)
    app.router.add_post("/console/broadcasts", send)
