"""The responder API under /api/v1: bearer tokens, roles, JSON in and out."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from beacon.config import Settings
from bot.i18n import LANGUAGES
from campaigns import broadcasts
from channels.segments import segments
from registry.tokens import Caller, authenticate

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CALLER = web.RequestKey("caller", Caller)
# Estimated price of one SMS segment in USD; a planning figure, not a bill.
SMS_SEGMENT_PRICE = 0.0079


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
        unknown = [v for v in value if v not in ("sms", "whatsapp", "telegram", "simulator")]
        if unknown:
            raise ValueError(f"unknown channel(s): {', '.join(unknown)}")
        return value


class BroadcastIn(BaseModel):
    """A broadcast as a responder writes it."""

    model_config = ConfigDict(extra="forbid")
    text: dict[str, str] = Field(min_length=1)
    audience: Audience = Audience()
    check_in: bool = False
    send_at: datetime | None = None
    remind_after_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)

    @field_validator("text")
    @classmethod
    def _text(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = [k for k in value if k not in LANGUAGES]
        if unknown:
            raise ValueError(f"unsupported language(s): {', '.join(unknown)}")
        empty = [k for k, v in value.items() if not v.strip()]
        if empty:
            raise ValueError(f"empty text for: {', '.join(empty)}")
        return value


def requires(*roles: str) -> Callable[[Handler], Handler]:
    """Allow a handler to the given roles (admin always)."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            caller = request.get(CALLER)
            if caller is None:
                raise api_error(401, "unauthorized", "a valid bearer token is required")
            if caller.role != "admin" and caller.role not in roles:
                raise api_error(403, "forbidden", f"role {caller.role!r} may not do this")
            return await handler(request)

        guarded.__doc__ = handler.__doc__
        return guarded

    return wrap


def api_error(status: int, code: str, message: str, detail: Any = None) -> web.HTTPException:
    """A JSON error response to raise."""
    body: dict[str, Any] = {"error": code, "message": message}
    if detail is not None:
        body["detail"] = detail
    exc = web.HTTPException(text=web.json_response(body).text, content_type="application/json")
    exc.set_status(status)
    return exc


async def parse(request: web.Request, model: type[BaseModel]) -> Any:
    """Validate a JSON body; 422 naming each wrong field."""
    try:
        raw = await request.json()
    except ValueError:
        raise api_error(422, "invalid_json", "the body must be a JSON object") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        detail = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]} for e in exc.errors()]
        fields = ", ".join(d["field"] for d in detail)
        raise api_error(422, "validation_error", f"invalid field(s): {fields}", detail) from None


@web.middleware
async def authentication(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the caller of a valid bearer token to API requests."""
    if request.path.startswith("/api/") and request.path != "/api/v1/openapi.json":
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise api_error(401, "unauthorized", "a valid bearer token is required")
        from beacon.app import BEACON

        caller = await authenticate(request.app[BEACON].db, token.strip())
        if caller is None:
            raise api_error(401, "unauthorized", "a valid bearer token is required")
        request[CALLER] = caller
    return await handler(request)


def check_areas(request: web.Request, body: BroadcastIn) -> None:
    """422 when the audience names an area the gazetteer does not have."""
    from beacon.app import BEACON

    unknown = [a for a in body.audience.areas if a not in request.app[BEACON].gazetteer.areas]
    if unknown:
        raise api_error(422, "validation_error", "invalid field(s): audience.areas",
                     [{"field": "audience.areas", "message": f"unknown area(s): {', '.join(unknown)}"}])


async def preview_of(beacon: Any, body: BroadcastIn) -> dict[str, Any]:
    """Recipients by language and channel, SMS segments and cost, languages without a text."""
    settings: Settings = beacon.settings
    audience = broadcasts.Audience.from_json(body.audience.model_dump())
    async with beacon.db.read() as conn:
        chosen = broadcasts.pick((await conn.execute(broadcasts.audience_query(beacon.gazetteer, audience))).all())
    members = [(row.language or settings.default_language, row.last_channel) for row in chosen.values()]
    by_language = Tally(lang for lang, _ in members)
    by_channel = Tally(channel for _, channel in members)
    languages = []
    for language, count in sorted(by_language.items()):
        text = broadcasts.message_for(body.text, language, settings.default_language, body.check_in)
        seg = segments(text)
        sms = sum(1 for lang, ch in members if lang == language and ch == "sms")
        languages.append({
            "language": language, "recipients": count, "has_text": language in body.text,
            "encoding": seg.encoding, "characters": seg.characters, "segments": seg.segments,
            "estimated_cost_usd": round(sms * seg.segments * SMS_SEGMENT_PRICE, 4),
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


@requires("responder")
async def preview(request: web.Request) -> web.Response:
    """Recipients by language and channel, SMS segments and cost, languages without a text."""
    from beacon.app import BEACON

    body: BroadcastIn = await parse(request, BroadcastIn)
    check_areas(request, body)
    return web.json_response(await preview_of(request.app[BEACON], body))


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this API."""
    from beacon.openapi import document

    return web.json_response(document())


def setup(app: web.Application, settings: Settings) -> None:
    """Mount the API on the app."""
    from beacon import api_broadcasts, api_stats

    app.middlewares.append(authentication)
    app.router.add_get("/api/v1/openapi.json", openapi)
    app.router.add_post("/api/v1/broadcasts/preview", preview)
    api_broadcasts.setup(app)
    api_stats.setup(app)
    from beacon import api_reports
    api_reports.setup(app)
