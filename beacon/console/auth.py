"""Signing in and out, and the console's language."""

from __future__ import annotations

import secrets

from aiohttp import web

from beacon.console.i18n import CONSOLE_LANGUAGES
from beacon.console.throttle import Throttle
from beacon.console.web import (
    COOKIE,
    FIELDWORK,
    LOGIN_COOKIE,
    SESSION,
    client_address,
    forbidden,
    language_of,
    render,
    set_cookie,
    translate,
)
from beacon.context import BEACON
from domain.vocabulary import Role
from registry import users

THROTTLE = web.AppKey("console_throttle", Throttle)


def _safe_next(target: str | None) -> str:
    """Only a console path is a place to go back to after signing in."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/overview"


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
    target = _safe_next(str(form.get("next") or ""))
    if role == Role.FIELDWORKER and not target.startswith(FIELDWORK):
        target = FIELDWORK  # the only page a fieldworker may open
    response = web.HTTPSeeOther(target)
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


def add_routes(app: web.Application) -> None:
    """Mount the sign-in, sign-out and language routes."""
    app[THROTTLE] = Throttle()
    app.router.add_get("/console/login", login_form)
    app.router.add_post("/console/login", login)
    app.router.add_post("/console/logout", logout)
    app.router.add_post("/console/language", choose_language)
