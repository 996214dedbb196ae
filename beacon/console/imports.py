"""Importing a list from the console (admin): upload, map the columns, see the dry-run report, then import.

The uploaded file waits between the steps sealed under the data key in this process's memory, for
:data:`KEPT_FOR` at most and only for the session that uploaded it; it is never written to disk. Larger
lists, or several web processes, use ``beacon import``.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass

import phonenumbers
from aiohttp import web

from beacon.console.web import SESSION, page, render, translate
from beacon.context import BEACON
from campaigns import imports
from campaigns.import_file import FIELDS, ImportFileError, Table, column_indexes, read_table
from domain.vocabulary import LegalBasis

KEPT_FOR = 1800.0  # seconds an upload waits for its mapping and import
SHOWN = 50


@dataclass(frozen=True)
class Upload:
    """A file between the steps: sealed, with who uploaded it and until when it is kept."""

    sealed: bytes
    session: str
    region: str
    legal_basis: str
    expires: float


UPLOADS = web.AppKey("console_uploads", dict)


def _aad(token: str) -> str:
    return f"console-upload:{token}"


def _keep(request: web.Request, content: bytes, region: str, legal_basis: str) -> str:
    store: dict[str, Upload] = request.app[UPLOADS]
    now = time.monotonic()
    for token in [t for t, u in store.items() if u.expires < now]:
        del store[token]
    token = secrets.token_urlsafe(18)
    sealed = request.app[BEACON].keys.ring.encrypt(base64.b64encode(content).decode(), _aad(token))
    store[token] = Upload(sealed, request[SESSION].id_hash, region, legal_basis, now + KEPT_FOR)
    return token


def _take(request: web.Request, token: str) -> tuple[Upload, Table] | None:
    upload: Upload | None = request.app[UPLOADS].get(token)
    if upload is None or upload.session != request[SESSION].id_hash or upload.expires < time.monotonic():
        return None
    content = base64.b64decode(request.app[BEACON].keys.ring.decrypt(upload.sealed, _aad(token)))
    return upload, read_table(content)


async def _start(request: web.Request, error: str | None = None, status: int = 200) -> web.Response:
    async with request.app[BEACON].db.read() as conn:
        past = await imports.history(conn, SHOWN)
    done = request.query.get("done")
    return render(request, "imports.html", {"past": past, "error": error, "bases": tuple(LegalBasis),
                                            "done": int(done) if done and done.isdecimal() else None,
                                            "regions": sorted(phonenumbers.SUPPORTED_REGIONS)}, status=status)


@page("imports")
async def imports_page(request: web.Request) -> web.StreamResponse:
    """GET: the upload form and the past imports with their counts and legal basis."""
    return await _start(request)


@page("imports")
async def upload(request: web.Request) -> web.StreamResponse:
    """POST: a CSV or XLSX file; the column-mapping step."""
    form = await request.post()
    file = form.get("file")
    region, basis = str(form.get("region") or "").upper(), str(form.get("legal_basis") or "")
    if not isinstance(file, web.FileField):
        return await _start(request, translate(request, "Choose a CSV or XLSX file."), 400)
    if region not in phonenumbers.SUPPORTED_REGIONS or basis not in tuple(LegalBasis):
        return await _start(request, translate(request, "Choose the region and the legal basis."), 400)
    content = file.file.read()
    try:
        table = read_table(content)
    except ImportFileError as exc:
        return await _start(request, str(exc), 400)
    token = _keep(request, content, region, basis)
    return render(request, "import_map.html", {"token": token, "header": table.header, "fields": FIELDS,
                                               "rows": len(table.rows), "guess": _guess(table.header)})


def _guess(header: tuple[str, ...]) -> dict[str, str]:
    """A first mapping: a column named like a field (phone, mobile, language, area, region, name ...)."""
    hints = {"phone": ("phone", "mobile", "tel", "number", "msisdn"), "language": ("lang",),
             "area": ("area", "region", "city", "district", "governorate"), "first_name": ("name",)}
    guess: dict[str, str] = {}
    for field, words in hints.items():
        for column in header:
            if any(w in column.casefold() for w in words) and column not in guess.values():
                guess[field] = column
                break
    return guess


def _mapping(form: dict[str, str]) -> dict[str, str]:
    return {field: form[f"map_{field}"] for field in FIELDS if form.get(f"map_{field}")}


@page("imports")
async def check(request: web.Request) -> web.StreamResponse:
    """POST: the mapping; the dry-run report (nothing stored) and the button that imports."""
    beacon = request.app[BEACON]
    form = {k: str(v) for k, v in (await request.post()).items()}
    taken = _take(request, form.get("token", ""))
    if taken is None:
        return await _start(request, translate(request, "The upload has expired. Upload the file again."), 400)
    upload_, table = taken
    mapping = _mapping(form)
    try:
        column_indexes(table.header, mapping)
    except ImportFileError as exc:
        return render(request, "import_map.html", {"token": form["token"], "header": table.header, "fields": FIELDS,
                                                   "rows": len(table.rows), "guess": mapping, "error": str(exc)},
                      status=400)
    report = await imports.check(beacon.db, beacon.keys.ring, beacon.service.bot, table, mapping, upload_.region)
    return render(request, "import_report.html", {"token": form["token"], "mapping": mapping, "lines": report.lines(),
                                                  "counts": report.counts(), "upload": upload_})


@page("imports")
async def run(request: web.Request) -> web.StreamResponse:
    """POST: import (or resume) the uploaded file with the mapping that was checked; audited."""
    beacon = request.app[BEACON]
    form = {k: str(v) for k, v in (await request.post()).items()}
    taken = _take(request, form.get("token", ""))
    if taken is None:
        return await _start(request, translate(request, "The upload has expired. Upload the file again."), 400)
    upload_, table = taken
    base = beacon.settings.invitation_link_base
    try:
        import_id, _ = await imports.run(beacon.db, beacon.keys.ring, beacon.service.bot, table, _mapping(form),
                                         region=upload_.region, legal_basis=upload_.legal_basis,
                                         by=request[SESSION].actor,
                                         links=imports.Links(base, beacon.settings.invitation_days) if base else None)
    except ImportFileError as exc:
        return await _start(request, str(exc), 400)
    request.app[UPLOADS].pop(form["token"], None)
    beacon.sender.wake()
    raise web.HTTPSeeOther(f"/console/imports?done={import_id}")


def add_routes(app: web.Application) -> None:
    """Mount the import pages."""
    app[UPLOADS] = {}
    app.router.add_get("/console/imports", imports_page)
    app.router.add_post("/console/imports", upload)
    app.router.add_post("/console/imports/check", check)
    app.router.add_post("/console/imports/run", run)
