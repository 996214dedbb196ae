"""Responder API: broadcast drafts and previews, broadcasts and their tallies, need-help cases, the audit log."""

from __future__ import annotations

import math
from collections import Counter as Tally
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from beacon.config import Settings
from beacon.context import BEACON, Beacon
from beacon.http import CALLER, MAX_ID, api_error, parse, path_id, requires
from bot import texts
from bot.i18n import LANGUAGES
from campaigns import broadcasts, cap, cases, outbox, queries, webhooks
from domain.segments import segments
from domain.vocabulary import CaseStatus, ChannelKind, Role
from registry import audit, case_files
from registry.times import iso

# Estimated price of one SMS segment in USD; a planning figure, not a bill.
SMS_SEGMENT_PRICE = 0.0079
WORDS_PER_MINUTE = 130  # a synthetic voice reading a broadcast
CALL_OVERHEAD_SECONDS = 20  # ringing, machine detection, the check-in question and its answer


def _caller(request: web.Request) -> str:
    return request[CALLER].name


class Audience(BaseModel):
    """Who a broadcast reaches; empty lists mean everyone."""

    model_config = ConfigDict(extra="forbid")
    areas: list[str] = []
    languages: list[str] = []
    nationalities: list[str] = []
    channels: list[str] = []

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in LANGUAGES]
        if unknown:
            raise ValueError(f"unsupported language(s): {', '.join(unknown)}")
        return value

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in ChannelKind.__members__.values()]
        if unknown:
            raise ValueError(f"unknown channel(s): {', '.join(unknown)}")
        return value


def _texts(value: dict[str, str]) -> dict[str, str]:
    """Texts by language: supported languages, none empty."""
    unknown = [k for k in value if k not in LANGUAGES]
    if unknown:
        raise ValueError(f"unsupported language(s): {', '.join(unknown)}")
    empty = [k for k, v in value.items() if not v.strip()]
    if empty:
        raise ValueError(f"empty text for: {', '.join(empty)}")
    return value


class PollIn(BaseModel):
    """A multiple-choice question: the question and 2 to 9 options, each with texts by language."""

    model_config = ConfigDict(extra="forbid")
    question: dict[str, str] = Field(min_length=1)
    options: list[dict[str, str]] = Field(min_length=2, max_length=9)

    @field_validator("question")
    @classmethod
    def _question(cls, value: dict[str, str]) -> dict[str, str]:
        return _texts(value)

    @field_validator("options")
    @classmethod
    def _options(cls, value: list[dict[str, str]]) -> list[dict[str, str]]:
        for option in value:
            if not option:
                raise ValueError("every option needs a text")
            _texts(option)
        return value


class BroadcastIn(BaseModel):
    """A broadcast as a responder writes it."""

    model_config = ConfigDict(extra="forbid")
    text: dict[str, str] = Field(min_length=1)
    audience: Audience = Audience()
    check_in: bool = False
    poll: PollIn | None = None
    send_at: datetime | None = None
    remind_after_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)
    call_reminders: bool = Field(default=False, description="remind those who have not answered by phone call")

    @field_validator("text")
    @classmethod
    def _text(cls, value: dict[str, str]) -> dict[str, str]:
        return _texts(value)

    def poll_json(self) -> dict[str, Any] | None:
        """The poll as stored."""
        return self.poll.model_dump() if self.poll else None


def check_areas(request: web.Request, body: BroadcastIn) -> None:
    """422 when the audience names an area the gazetteer does not have."""
    unknown = [a for a in body.audience.areas if a not in request.app[BEACON].gazetteer.areas]
    if unknown:
        raise api_error(422, "validation_error", "invalid field(s): audience.areas",
                     [{"field": "audience.areas", "message": f"unknown area(s): {', '.join(unknown)}"}])


async def preview_of(beacon: Beacon, body: BroadcastIn) -> dict[str, Any]:
    """Recipients by language and channel, SMS segments and cost, languages without a text."""
    settings: Settings = beacon.settings
    audience = broadcasts.Audience.from_json(body.audience.model_dump())
    placing = bool(settings.twilio and settings.twilio.voice_from)  # calls can be placed
    async with beacon.db.read() as conn:
        chosen = broadcasts.pick((await conn.execute(broadcasts.audience_query(beacon.gazetteer, audience,
                                                                               placing))).all())
    members = [(row.language or settings.default_language,
                outbox.delivery_channel(row.last_channel, row.preferred_channel, placing)) for row in chosen.values()]
    by_language = Tally(lang for lang, _ in members)
    by_channel = Tally(channel for _, channel in members)
    languages = []
    for language, count in sorted(by_language.items()):
        text = broadcasts.message_for(body.text, language, settings.default_language, body.check_in,
                                      body.poll_json())
        seg = segments(text)
        sms = sum(1 for lang, ch in members if lang == language and ch == "sms")
        calls = sum(1 for lang, ch in members if lang == language and ch == ChannelKind.VOICE)
        # A call reads the text, then the poll's question and options when there is one.
        minutes = call_minutes(broadcasts.message_for(body.text, language, settings.default_language, False,
                                                      body.poll_json()))
        call_cost = calls * minutes * settings.voice_price_per_minute
        languages.append({
            "language": language, "recipients": count, "has_text": language in body.text,
            "encoding": seg.encoding, "characters": seg.characters, "segments": seg.segments,
            "calls": calls, "call_minutes": minutes,
            "estimated_cost_usd": round(sms * seg.segments * SMS_SEGMENT_PRICE + call_cost, 4),
        })
    missing = sorted(lang for lang in by_language if lang not in body.text)
    return {
        "recipients": len(members),
        "by_language": languages,
        "by_channel": dict(sorted(by_channel.items())),
        "missing_languages": missing,
        "fallback_language": settings.default_language,
        "estimated_cost_usd": round(sum(x["estimated_cost_usd"] for x in languages), 4),  # type: ignore[misc]
    }


def call_minutes(text: str) -> int:
    """Minutes one call reading ``text`` is billed for (Twilio bills each minute begun), at least one."""
    seconds = len(text.split()) * 60 / WORDS_PER_MINUTE + CALL_OVERHEAD_SECONDS
    return max(1, math.ceil(seconds / 60))


@requires(Role.RESPONDER)
async def preview(request: web.Request) -> web.Response:
    """Recipients by language and channel, SMS segments and cost, languages without a text."""
    body: BroadcastIn = await parse(request, BroadcastIn)
    check_areas(request, body)
    return web.json_response(await preview_of(request.app[BEACON], body))


async def store(beacon: Beacon, body: BroadcastIn, by: str, draft_key: str | None = None) -> int:
    """Store a checked broadcast (with its poll) and wake the runner: the API's and the console's way to send."""
    broadcast_id = await broadcasts.create(
        beacon.db, texts_by_language=body.text, audience=broadcasts.Audience.from_json(body.audience.model_dump()),
        check_in=body.check_in, send_at=body.send_at, remind_after_minutes=body.remind_after_minutes,
        created_by=by, poll=body.poll_json(), call_reminders=body.call_reminders, draft_key=draft_key)
    beacon.runner.wake()
    return broadcast_id


async def send_draft(beacon: Beacon, broadcast_id: int, by: str) -> str | None:
    """Send a draft now (audited with ``by``); the status it had, None when there is no such broadcast."""
    status = await broadcasts.approve(beacon.db, broadcast_id, by)
    if status == "draft":
        beacon.runner.wake()
    return status


@requires(Role.RESPONDER)
async def create_broadcast(request: web.Request) -> web.Response:
    """Store a broadcast; it is fanned out now or at ``send_at``."""
    beacon = request.app[BEACON]
    body: BroadcastIn = await parse(request, BroadcastIn)
    check_areas(request, body)
    broadcast_id = await store(beacon, body, _caller(request))
    async with beacon.db.read() as conn:
        found = await broadcasts.summary(conn, broadcast_id)
    return web.json_response(found, status=201)


@requires(Role.RESPONDER)
async def get_broadcast(request: web.Request) -> web.Response:
    """A broadcast with its tallies, and the CAP messages that made or concern it."""
    broadcast_id = path_id(request, "broadcast")
    async with request.app[BEACON].db.read() as conn:
        found = await broadcasts.summary(conn, broadcast_id)
        alerts = await cap.history(conn, broadcast_id)
    if found is None:
        raise api_error(404, "not_found", "no such broadcast")
    if alerts:
        found["cap"] = alerts
    return web.json_response(found)


@requires(Role.RESPONDER)
async def send_broadcast(request: web.Request) -> web.Response:
    """Send a draft (a CAP alert's) now; 409 for a broadcast that is not a draft."""
    beacon = request.app[BEACON]
    broadcast_id = path_id(request, "broadcast")
    status = await send_draft(beacon, broadcast_id, _caller(request))
    if status is None:
        raise api_error(404, "not_found", "no such broadcast")
    if status != "draft":
        raise api_error(409, "conflict", f"only a draft can be sent; this broadcast is {status}")
    async with beacon.db.read() as conn:
        return web.json_response(await broadcasts.summary(conn, broadcast_id))


@requires(Role.RESPONDER)
async def list_broadcasts(request: web.Request) -> web.Response:
    """The latest broadcasts with their tallies."""
    async with request.app[BEACON].db.read() as conn:
        items = await queries.latest_broadcasts(conn, 50)
    return web.json_response({"items": items})


@requires(Role.RESPONDER)
async def cancel_broadcast(request: web.Request) -> web.Response:
    """Stop what has not left yet."""
    beacon = request.app[BEACON]
    broadcast_id = path_id(request, "broadcast")
    if await broadcasts.cancel(beacon.db, broadcast_id, _caller(request)) is None:
        raise api_error(404, "not_found", "no such broadcast")
    async with beacon.db.read() as conn:
        return web.json_response(await broadcasts.summary(conn, broadcast_id))


@requires(Role.RESPONDER)
async def list_cases(request: web.Request) -> web.Response:
    """Need-help cases, filtered by status, area (with the areas below it) and category; audited."""
    beacon = request.app[BEACON]
    status = request.query.get("status") or None
    if status and status not in CaseStatus.__members__.values():
        raise api_error(422, "validation_error", "invalid field(s): status",
                        [{"field": "status", "message": f"must be one of {', '.join(CaseStatus)}"}])
    area = request.query.get("area") or None
    if area and area not in beacon.gazetteer.areas:
        raise api_error(422, "validation_error", "invalid field(s): area",
                        [{"field": "area", "message": "unknown area"}])
    category = request.query.get("category") or None
    async with beacon.db.write() as conn:
        rows = await cases.find(conn, status=status, category=category,
                                area_ids=beacon.gazetteer.descendants([area]) if area else None)
        items = [case_files.view(beacon.keys.ring, row) for row in rows]
        await audit.append(conn, _caller(request), "cases.read", None, {"cases": [r.id for r in rows]})
    return web.json_response({"items": items})


class CaseChange(BaseModel):
    """A responder's change to a case."""

    model_config = ConfigDict(extra="forbid")
    status: CaseStatus | None = None
    assignee: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=2000)


NOTIFY: dict[str, str] = {CaseStatus.IN_PROGRESS: texts.CASE_PICKED_UP, CaseStatus.CLOSED: texts.CASE_CLOSED}


async def apply_case_change(beacon: Beacon, case_id: int, by: str, body: CaseChange) -> dict[str, Any]:
    """Assign, annotate or move a case, audited; the registrant is told when it is picked up or closed.

    Raises :class:`campaigns.cases.CaseError` for an unknown case or a change that is not allowed."""
    async with beacon.db.write() as conn:
        row, moved = await cases.change(conn, beacon.keys.ring, case_id, by=by,
                                        status=body.status, assignee=body.assignee, note=body.note)
        if moved in NOTIFY:
            await outbox.tell(conn, beacon.keys.ring, row.registrant_id, NOTIFY[moved],
                              beacon.settings.default_language)
        await audit.append(conn, by, "case.updated", str(case_id),
                           {"status": moved, "assigned": body.assignee is not None, "note": bool(body.note)})
        if body.assignee is not None:
            await webhooks.case_event(conn, beacon.keys.ring, "case.assigned", case_id)
        if moved == CaseStatus.CLOSED:
            await webhooks.case_event(conn, beacon.keys.ring, "case.closed", case_id)
        view = case_files.view(beacon.keys.ring, row)
    beacon.sender.wake()
    beacon.webhooks.wake()
    return view


@requires(Role.RESPONDER)
async def change_case(request: web.Request) -> web.Response:
    """Assign, annotate or move a case; the registrant is told when it is picked up or closed."""
    body: CaseChange = await parse(request, CaseChange)
    try:
        view = await apply_case_change(request.app[BEACON], path_id(request, "case"), _caller(request), body)
    except cases.CaseError as exc:
        status = 404 if "no such" in str(exc) else 409
        raise api_error(status, "not_found" if status == 404 else "conflict", str(exc)) from None
    return web.json_response(view)


class AuditQuery(BaseModel):
    """The audit log's filters."""

    model_config = ConfigDict(extra="forbid")
    actor: str | None = None
    action: str | None = None
    subject: str | None = None
    after: int | None = Field(default=None, ge=0, le=MAX_ID)
    before: int | None = Field(default=None, ge=1, le=MAX_ID)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    limit: int = Field(default=200, ge=1, le=1000)


@requires(Role.AUDITOR)
async def list_audit(request: web.Request) -> web.Response:
    """Audit entries, newest first; filters: actor, action, subject, after/before (seq), since/until (time)."""
    try:
        query = AuditQuery.model_validate({k: v for k, v in request.query.items() if v != ""})
    except ValidationError as exc:
        detail = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        raise api_error(422, "validation_error", f"invalid field(s): {', '.join(d['field'] for d in detail)}",
                        detail) from None
    async with request.app[BEACON].db.read() as conn:
        rows = await audit.entries(conn, **query.model_dump())
    items: list[dict[str, Any]] = [
        {"seq": r.seq, "at": iso(r.at), "actor": r.actor, "action": r.action, "subject": r.subject,
         "detail": r.detail, "hash": r.hash} for r in rows]
    return web.json_response({"items": items})


@requires(Role.AUDITOR)
async def audit_head(request: web.Request) -> web.Response:
    """The newest entry's seq and hash: a checkpoint to keep outside Beacon and verify against later."""
    async with request.app[BEACON].db.read() as conn:
        head = await audit.head(conn)
    return web.json_response({"seq": head.seq, "hash": head.hash})


def setup(app: web.Application) -> None:
    """Mount these routes."""
    app.router.add_post("/api/v1/broadcasts/preview", preview)
    app.router.add_post("/api/v1/broadcasts", create_broadcast)
    app.router.add_get("/api/v1/broadcasts", list_broadcasts)
    app.router.add_get("/api/v1/broadcasts/{id}", get_broadcast)
    app.router.add_post("/api/v1/broadcasts/{id}/cancel", cancel_broadcast)
    app.router.add_post("/api/v1/broadcasts/{id}/send", send_broadcast)
    app.router.add_get("/api/v1/cases", list_cases)
    app.router.add_patch("/api/v1/cases/{id}", change_case)
    app.router.add_get("/api/v1/audit", list_audit)
    app.router.add_get("/api/v1/audit/head", audit_head)
