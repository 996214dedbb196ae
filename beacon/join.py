"""The web sign-up: ``/join`` and ``/join/<code>``, a few server-rendered pages that need no JavaScript.

The pages ask what the text conversation asks, in its order: language, the privacy notice and consent,
the area, then the optional details; then how to reach the person, and a one-time code sent there.
Only a right code registers anyone (:mod:`campaigns.signup`). The forms carry a CSRF token that must
match a cookie (double submit); every text comes from the bot's catalogs, in the person's language.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from beacon import join_form
from beacon.console.web import client_address
from beacon.context import BEACON, Beacon
from bot import texts
from bot.i18n import LANGUAGES, RTL_LANGUAGES, render
from bot.profile import AGE_BANDS, GENDERS
from campaigns import signup
from channels.telegram import TelegramChannel
from domain.vocabulary import ChannelKind, ProviderName
from registry import signup_codes, sources
from registry.signup_codes import TooManyCodes, Verdict
from registry.sources import Source

COOKIE = "beacon_join"
TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                               autoescape=True, trim_blocks=True, lstrip_blocks=True,
                               undefined=jinja2.StrictUndefined)
GENDER_LABELS = dict(zip(GENDERS, (texts.GENDER_FEMALE, texts.GENDER_MALE, texts.GENDER_OTHER), strict=True))
AGE_LABELS = {AGE_BANDS[0]: texts.AGE_UNDER_18, AGE_BANDS[-1]: texts.AGE_60_PLUS}
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
}


def channels(beacon: Beacon) -> list[str]:
    """The channels a code can be sent over in this deployment."""
    twilio = beacon.settings.twilio
    offered = []
    if twilio is not None and (twilio.sms_from or twilio.messaging_service_sid):
        offered.append(ChannelKind.SMS.value)
    if twilio is not None and twilio.whatsapp_from:
        offered.append(ChannelKind.WHATSAPP.value)
    if telegram_bot(beacon):
        offered.append(ChannelKind.TELEGRAM.value)
    return offered


def telegram_bot(beacon: Beacon) -> str | None:
    """The Telegram bot's username, when Telegram is on."""
    channel = beacon.providers.get(ProviderName.TELEGRAM)
    return channel.username if isinstance(channel, TelegramChannel) else None


async def _source(request: web.Request) -> Source | None:
    code = request.match_info.get("code")
    if not code:
        return None
    async with request.app[BEACON].db.read() as conn:
        return await sources.by_code(conn, code)


def _suggested(request: web.Request, source: Source | None) -> str:
    if source is not None and source.language in LANGUAGES:
        return source.language
    for part in request.headers.get("Accept-Language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    default = request.app[BEACON].settings.default_language
    return default if default in LANGUAGES else "en"


def _areas(beacon: Beacon, language: str) -> list[tuple[str, str]]:
    """The gazetteer as (id, name) in ``language``, each area followed by those below it, indented."""
    gazetteer = beacon.gazetteer
    tree: list[tuple[str, str]] = []

    def walk(parent: str | None, depth: int) -> None:
        for area in sorted((a for a in gazetteer.areas.values() if a.parent == parent), key=lambda a: a.name(language)):
            tree.append((area.id, "\u2003" * depth + area.name(language)))
            walk(area.id, depth + 1)

    walk(None, 0)
    return tree


def page(request: web.Request, step: str, language: str, csrf: str, *, status: int = 200,
         **context: Any) -> web.Response:
    """One sign-up page in ``language`` (its direction too), with the CSRF cookie set."""
    beacon = request.app[BEACON]

    def t(message: str, **params: Any) -> str:
        return render(language, message, **params)

    values: dict[str, Any] = {
        "step": step, "lang": language, "dir": "rtl" if language in RTL_LANGUAGES else "ltr", "t": t,
        "texts": texts, "path": request.path, "csrf": csrf, "languages": LANGUAGES, "error": None,
        "answers": join_form.Answers({"lang": language}), "operator": beacon.settings.operator_name,
        "months": beacon.settings.retention_months, "family_sharing": beacon.service.bot.family_sharing,
        "genders": [(g, t(GENDER_LABELS[g])) for g in GENDERS],
        "age_bands": [(a, t(AGE_LABELS[a]) if a in AGE_LABELS else a) for a in AGE_BANDS],
        "telegram_link": "",
    }
    html = TEMPLATES.get_template("join.html").render({**values, **context})
    response = web.Response(text=html, content_type="text/html", status=status, headers=HEADERS)
    response.set_cookie(COOKIE, csrf, path="/join", httponly=True, samesite="Lax",
                        secure=beacon.settings.public_url.startswith("https://"))
    return response


async def join_page(request: web.Request) -> web.Response:
    """GET: the language list, or with ``?lang=`` the privacy notice and the consent question."""
    beacon = request.app[BEACON]
    if not channels(beacon):
        raise web.HTTPNotFound(text="the web sign-up needs an SMS or WhatsApp sender")
    csrf = request.cookies.get(COOKIE) or secrets.token_urlsafe(24)
    source = await _source(request)
    chosen = request.query.get("lang", "")
    if chosen in LANGUAGES:
        return page(request, "consent", chosen, csrf, answers=join_form.Answers({"lang": chosen}))
    return page(request, "language", _suggested(request, source), csrf)


async def join_post(request: web.Request) -> web.Response:
    """POST: the answer to one page; the next page, or the same one with what was typed and what is wrong."""
    beacon = request.app[BEACON]
    if not channels(beacon):
        raise web.HTTPNotFound(text="the web sign-up needs an SMS or WhatsApp sender")
    try:
        form = await request.post()
    except (UnicodeDecodeError, ValueError):
        raise web.HTTPBadRequest(text="the form could not be read") from None
    cookie = request.cookies.get(COOKIE, "")
    sent = str(form.get("csrf", ""))
    answers = join_form.read(form, beacon.gazetteer, family_sharing=beacon.service.bot.family_sharing)
    language = answers.profile.language
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()) or language is None:
        fresh = secrets.token_urlsafe(24)
        return page(request, "expired", language or _suggested(request, None), fresh, status=403)
    step = str(form.get("step", ""))
    source = await _source(request)
    if step == "consent":
        if form.get("consent") != "yes":
            return page(request, "declined", language, cookie)
        return _area_page(request, answers, cookie, preset=source.area_id if source else None)
    if answers.typed["consent"] != "yes":
        return page(request, "expired", language, secrets.token_urlsafe(24), status=403)
    if step == "area":
        if answers.profile.area_id is None:
            return _area_page(request, answers, cookie, error=texts.WEB_CHOOSE_AREA)
        return page(request, "details", language, cookie, answers=answers)
    if answers.profile.area_id is None:
        return page(request, "expired", language, secrets.token_urlsafe(24), status=403)
    if answers.errors:
        return page(request, "details", language, cookie, answers=answers, error=texts.WEB_CHECK, status=422)
    if step == "details":
        return _channel_page(request, answers, cookie)
    if step in ("send", "verify"):
        return await _verification(request, step, form, answers, cookie, source)
    return page(request, "expired", language, secrets.token_urlsafe(24), status=403)


def _area_page(request: web.Request, answers: join_form.Answers, csrf: str, *, error: str | None = None,
               preset: str | None = None) -> web.Response:
    language = answers.profile.language or "en"
    selected = answers.typed.get("area") or preset or ""
    return page(request, "area", language, csrf, answers=answers, error=error, selected=selected,
                areas=_areas(request.app[BEACON], language), status=422 if error else 200)


def _channel_page(request: web.Request, answers: join_form.Answers, csrf: str, *, error: str | None = None,
                  phone: str = "", channel: str = "", status: int = 200) -> web.Response:
    offered = channels(request.app[BEACON])
    return page(request, "channel", answers.profile.language or "en", csrf, answers=answers, error=error,
                phone=phone, channel=channel if channel in offered else offered[0], channels=offered, status=status)


async def _verification(request: web.Request, step: str, form: Any, answers: join_form.Answers, csrf: str,
                        source: Source | None) -> web.Response:
    """Send a code (``send``) or check the one typed (``verify``)."""
    beacon = request.app[BEACON]
    language = answers.profile.language or "en"
    channel = str(form.get("channel", ""))
    telegram = channel == ChannelKind.TELEGRAM
    typed_phone = "" if telegram else str(form.get("phone", "")).strip()[:40]
    number = "" if telegram else join_form.phone(typed_phone)
    if channel not in channels(beacon) or number is None:
        return _channel_page(request, answers, csrf, error=texts.WEB_PHONE_INVALID, phone=typed_phone,
                             channel=channel, status=422)
    now = datetime.now(UTC)
    if step == "send":
        client = signup_codes.client_key(beacon.keys.ring, client_address(request))
        try:
            async with beacon.db.write() as conn:
                if telegram:
                    payload = await signup.start_telegram(conn, beacon.keys.ring, language=language, client=client,
                                                          now=now)
                    ref = payload.split("-", 2)[2]
                    link = f"https://t.me/{telegram_bot(beacon)}?start={payload}"
                    return page(request, "code", language, csrf, answers=answers, phone="", channel=channel,
                                ref=ref, telegram_link=link)
                ref = await signup.send_code(conn, beacon.keys.ring, channel=channel, address=number,
                                             language=language, client=client, now=now)
        except TooManyCodes:
            return _channel_page(request, answers, csrf, error=texts.STATUS_TOO_MANY, phone=typed_phone,
                                 channel=channel, status=429)
        beacon.sender.wake()
        return page(request, "code", language, csrf, answers=answers, phone=typed_phone, channel=channel, ref=ref)
    ref = str(form.get("ref", ""))[:64]
    person = signup.Person(channel, number, answers.profile, source.id if source else None)
    async with beacon.db.write() as conn:
        result = await signup.verify_and_register(conn, beacon.keys.ring, person, ref=ref,
                                                  code=str(form.get("code", ""))[:20],
                                                  notice_version=beacon.service.bot.notice_version, now=now)
    if result is Verdict.WRONG:
        return page(request, "code", language, csrf, answers=answers, phone=typed_phone, channel=channel, ref=ref,
                    error=texts.WEB_CODE_WRONG, status=422, telegram_link=str(form.get("telegram_link", ""))[:200])
    if result is Verdict.EXPIRED:
        return _channel_page(request, answers, csrf, error=texts.WEB_CODE_EXPIRED, phone=typed_phone,
                             channel=channel, status=422)
    beacon.sender.wake()
    return page(request, "done", language, csrf,
                message=texts.REGISTERED if result is signup.Outcome.REGISTERED else texts.WEB_ALREADY)


def setup(app: web.Application) -> None:
    """Mount the sign-up pages."""
    for path in ("/join", "/join/{code}"):
        app.router.add_get(path, join_page)
        app.router.add_post(path, join_post)
