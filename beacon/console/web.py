"""What every console page shares: sessions, CSRF, security headers, the role rule, language and rendering."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
from aiohttp import web

from beacon import api_stats
from beacon.config import Settings
from beacon.console.i18n import CONSOLE_LANGUAGES, gettext_callables, is_rtl
from beacon.context import BEACON
from beacon.http import CALLER, may, record_id
from domain.vocabulary import Role
from registry import aggregates, users
from registry.tokens import Caller

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HERE = Path(__file__).parent
SESSION = web.RequestKey("console_session", users.Session)
COOKIE = "beacon_session"
LOGIN_COOKIE = "beacon_login"
PUBLIC = frozenset({"/console/login"})
FIELDWORK = "/console/assisted"  # a fieldworker's front door: the only page their role opens
# Pages by role; admin sees everything.
PAGES: dict[str, tuple[Role, ...]] = {
    "overview": (Role.RESPONDER, Role.ANALYST, Role.AUDITOR),
    "compose": (Role.RESPONDER,),
    "broadcasts": (Role.RESPONDER,),
    "cases": (Role.RESPONDER,),
    "aggregates": api_stats.READERS,  # the API's own rule for the numbers and exports
    "audit": (Role.AUDITOR,),
    "assisted": (Role.FIELDWORKER,),
    "arrangements": (Role.AUDITOR,),  # the register of sharing arrangements; admins also record them
    "imports": (),  # admin only
    "sources": (),  # outreach sources: admins only
}
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def may_see(role: str, page: str) -> bool:
    """Whether a role may open a console page."""
    return may(role, PAGES[page])


def page(name: str) -> Callable[[Handler], Handler]:
    """Only roles that may open page ``name`` get the handler; others a 403 page."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not may_see(request[SESSION].role, name):
                return forbidden(request, translate(request, "Your role does not give access to this page."))
            return await handler(request)

        guarded.__doc__ = handler.__doc__
        return guarded

    return wrap


def path_record_id(request: web.Request) -> int:
    """The record id in a console page's path; 404 for anything that cannot be one."""
    found = record_id(request.match_info["id"])
    if found is None:
        raise web.HTTPNotFound()
    return found


def person(actor: str) -> str:
    """An audit actor as staff read it: ``user:alice`` is alice, ``token:ops`` is ops (token)."""
    kind, _, name = actor.partition(":")
    return name if kind == "user" else f"{name} (token)" if kind == "token" else actor


def secure_cookies(settings: Settings) -> bool:
    """Cookies are marked Secure when Beacon is served over https."""
    return settings.public_url.startswith("https://")


def set_cookie(response: web.StreamResponse, settings: Settings, name: str, value: str, max_age: int | None) -> None:
    """A console cookie: HttpOnly, SameSite=Strict, limited to /console, Secure over https."""
    response.set_cookie(name, value, max_age=max_age, path="/console", httponly=True, samesite="Strict",
                        secure=secure_cookies(settings))


def forbidden(request: web.Request, message: str) -> web.Response:
    """A 403 page in the session's language."""
    return render(request, "error.html", {"title": message, "status": 403}, status=403)


SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": CSP,
}


@web.middleware
async def console_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Sessions, CSRF and security headers for /console."""
    if not request.path.startswith("/console") or request.path.startswith("/console/static/"):
        return await handler(request)
    try:
        response = await _guarded(request, handler)
    except web.HTTPException as exc:
        exc.headers.update({k: v for k, v in SECURITY_HEADERS.items() if k not in exc.headers})
        raise
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "POST":
        try:
            form = await request.post()  # parsed once here; handlers get it from aiohttp's cache
        except (UnicodeDecodeError, ValueError):
            raise web.HTTPBadRequest(text="the form could not be read") from None
    if request.path in PUBLIC:
        return await handler(request)
    cookie = request.cookies.get(COOKIE)
    session = await users.find_session(request.app[BEACON].db, cookie) if cookie else None
    if session is None:
        if "json" in request.headers.get("Accept", ""):
            return web.json_response({"error": "unauthorized", "message": "sign in again"}, status=401)
        # A page, or a form sent after the session ended: sign in, then back to where they were.
        back = request.path_qs if request.method == "GET" else _referring_path(request)
        expired = "&expired=1" if request.method == "POST" else ""
        raise web.HTTPSeeOther(f"/console/login?next={quote(back)}{expired}")
    request[SESSION] = session
    request[CALLER] = Caller(session.actor, session.role)
    if request.method == "POST":
        token = form.get("csrf") or request.headers.get("X-CSRF-Token")
        if not users.same_token(token if isinstance(token, str) else None, session.csrf):
            return forbidden(request, translate(request, "This form has expired. Go back, reload the page "
                                                         "and try again."))
    return await handler(request)


def _referring_path(request: web.Request) -> str:
    """The console page a form was sent from (its Referer), else the overview."""
    referer = urlsplit(request.headers.get("Referer", ""))
    if referer.netloc == request.host and referer.path.startswith("/console/"):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return "/console/overview"


def client_address(request: web.Request) -> str:
    """The browser's address: from X-Forwarded-For when the request came through a trusted proxy."""
    remote = request.remote or ""
    if remote in request.app[BEACON].settings.trusted_proxies:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if forwarded:
            return forwarded[-1]
    return remote


def language_of(request: web.Request) -> str:
    """The console language: the session's, else the best match of the browser's languages."""
    session = request.get(SESSION)
    if session is not None and session.language in CONSOLE_LANGUAGES:
        return session.language
    chosen = request.query.get("lang")
    if chosen in CONSOLE_LANGUAGES:
        return str(chosen)
    for part in request.headers.get("Accept-Language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in CONSOLE_LANGUAGES:
            return code
    return "en"


def translate(request: web.Request, message: str, **params: Any) -> str:
    """One console message in the request's language."""
    text = gettext_callables(language_of(request))[0](message)
    return text.format(**params) if params else text


def render(request: web.Request, template: str, context: dict[str, Any], *, status: int = 200) -> web.Response:
    """A page in the session's language and direction, with the navigation its role may see."""
    language = language_of(request)
    gettext, ngettext = gettext_callables(language)
    session = request.get(SESSION)
    role = session.role if session else None
    nav = [page for page in PAGES if role and may_see(role, page)]
    base = {"_": gettext, "ngettext": ngettext, "lang": language, "dir": "rtl" if is_rtl(language) else "ltr",
            "session": session, "nav": nav, "languages": CONSOLE_LANGUAGES, "path": request.path,
            "csrf": session.csrf if session else context.get("login_csrf", "")}
    return aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)


def area_label(request: web.Request, area_id: str) -> str:
    """An area's name in the reader's language; "Not given" for the unknown area, the id of one not in the gazetteer."""
    area = request.app[BEACON].gazetteer.areas.get(area_id)
    if area is None:
        return translate(request, "Not given") if area_id == aggregates.UNKNOWN else area_id
    return area.name(language_of(request))


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
