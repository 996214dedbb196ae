"""The audit log page: entries with filters, and a check of the whole chain on request."""

from __future__ import annotations

from aiohttp import web

from beacon.console.web import page, render
from beacon.context import BEACON
from registry import audit

SHOWN = 200


@page("audit")
async def audit_page(request: web.Request) -> web.StreamResponse:
    """Audit entries with filters, and a check of the whole chain on request."""
    db = request.app[BEACON].db
    filters = {name: request.query.get(name, "").strip() for name in ("actor", "action", "subject")}
    async with db.read() as conn:
        rows = await audit.entries(conn, actor=filters["actor"] or None, action=filters["action"] or None,
                                   subject=filters["subject"] or None, limit=SHOWN)
        verdict = await audit.verify(conn) if request.query.get("verify") else None
    return render(request, "audit.html", {"rows": rows, "verdict": verdict, "filters": filters})


def add_routes(app: web.Application) -> None:
    """Mount the audit log page."""
    app.router.add_get("/console/audit", audit_page)
