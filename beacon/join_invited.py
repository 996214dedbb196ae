"""``/join/invited/<token>``: an invited person's own link, to answer their invitation on a page.

GET shows who holds the number, why, and how it is protected, with three buttons; it changes nothing (link
previewers and SMS scanners fetch links). The decision is a POST of a CSRF-protected form (the double-submit
cookie of ``/join``), handed to the conversation through :meth:`Service.handle` as the message it stands for
(YES, STOP or DELETE), stored once (its provider id is the link's) before the link is marked used: consent,
refusal, erasure, audit and the texts sent back are those of a text answer. A link unknown, used, expired, or
whose person has answered otherwise, gets a page that says so and nothing about anyone. Tokens and numbers
are never logged; link and registrant ids are.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime

import structlog
from aiohttp import web

from beacon import join
from beacon.context import BEACON
from bot import texts
from bot.i18n import LANGUAGES
from channels.base import Inbound
from domain.vocabulary import ChannelKind
from registry import invitation_links
from registry.invitation_links import Found, Link

log = structlog.get_logger("beacon.join_invited")
DECISIONS = {"yes": "YES", "stop": "STOP", "delete": "DELETE"}  # the buttons, and the words they stand for
NOINDEX = {"X-Robots-Tag": "noindex, nofollow"}


def _language(request: web.Request, link: Link) -> str:
    return link.language if link.language in LANGUAGES else join._suggested(request, None)


def _gone(request: web.Request, found: Found) -> web.Response:
    """No open link: the same page for every reason, in the browser's language (nothing of the person's)."""
    response = join.page(request, "link_gone", join._suggested(request, None), secrets.token_urlsafe(24),
                         status=404 if found is Found.UNKNOWN else 410)
    response.headers.update(NOINDEX)
    return response


async def invited_page(request: web.Request) -> web.Response:
    """GET: the invitation and its three answers (reads only)."""
    beacon = request.app[BEACON]
    async with beacon.db.read() as conn:
        found = await invitation_links.find(conn, request.match_info["token"], datetime.now(UTC))
    if not isinstance(found, Link):
        return _gone(request, found)
    csrf = request.cookies.get(join.COOKIE) or secrets.token_urlsafe(24)
    response = join.page(request, "invitation", _language(request, found), csrf)
    response.headers.update(NOINDEX)
    return response


async def invited_post(request: web.Request) -> web.Response:
    """POST: the decision, once; the page then shows what was also sent by text."""
    beacon = request.app[BEACON]
    try:
        form = await request.post()
    except (UnicodeDecodeError, ValueError):
        raise web.HTTPBadRequest(text="the form could not be read") from None
    token = request.match_info["token"]
    cookie = request.cookies.get(join.COOKIE, "")
    decision = DECISIONS.get(str(form.get("decision", "")))
    now = datetime.now(UTC)
    if not cookie or not hmac.compare_digest(cookie.encode(), str(form.get("csrf", "")).encode()) or not decision:
        async with beacon.db.read() as conn:
            found = await invitation_links.find(conn, token, now)
        if not isinstance(found, Link):
            return _gone(request, found)
        return join.page(request, "invitation", _language(request, found), secrets.token_urlsafe(24), status=403,
                         error=texts.WEB_FORM_EXPIRED)
    async with beacon.db.read() as conn:
        found = await invitation_links.find(conn, token, now)
        if not isinstance(found, Link):
            return _gone(request, found)
        sender = await invitation_links.address(conn, beacon.keys.ring, found)
    # The answer is stored before the link is marked used: a crash in between loses nothing (the person has
    # answered, so the link is closed anyway), and a second POST is the same provider message: a duplicate.
    message = Inbound(ChannelKind.SMS, sender, decision, f"link:{found.id}", now)
    replies = await beacon.service.handle(invitation_links.PROVIDER, message)
    if replies is None:
        return _gone(request, Found.GONE)
    async with beacon.db.write() as conn:
        await invitation_links.use(conn, found.id, now)
    log.info("invitation_link.used", link_id=found.id, registrant_id=found.registrant_id, decision=decision)
    return join.page(request, "invitation_done", _language(request, found), cookie,
                     replies=[reply.text for reply in replies])


def setup(app: web.Application) -> None:
    """Mount the invitation links' page."""
    app.router.add_get(invitation_links.PATH + "{token}", invited_page)
    app.router.add_post(invitation_links.PATH + "{token}", invited_post)
