"""The responder console: server-rendered pages under /console for staff in a crisis.

Pages are Jinja2 templates with a little progressive-enhancement JavaScript; every asset ships
in the package. A browser signs in with a username and password (or an API token) and gets a
session cookie; every form carries the session's CSRF token. Roles are those of the API.
"""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

from beacon.console import (
    aggregates,
    arrangements,
    assisted,
    audit,
    auth,
    broadcasts,
    cases,
    compose,
    drafts,
    imports,
    overview,
    sources,
)
from beacon.console.web import HERE, console_guard, may_see, person


def setup(app: web.Application) -> None:
    """Mount the console on the app."""
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                               extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    env.globals["may_see"] = may_see
    env.filters["person"] = person
    app.middlewares.append(console_guard)
    app.router.add_static("/console/static/", HERE / "static", name="console_static", append_version=True)
    for pages in (auth, overview, compose, broadcasts, drafts, cases, aggregates, audit, assisted, arrangements,
                  imports, sources):
        pages.add_routes(app)
