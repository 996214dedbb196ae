"""Importing a list of people: a report of what would happen, and the resumable import that invites them.

Imported people are *invited*, not registered: each gets one invitation in their language (who holds
their number, why, YES / STOP / DELETE) and nothing else until they answer yes, unless the import
recorded vital interests as the legal basis for crisis messages. Rows are checked first (numbers
normalised in the import's region, languages and areas by code or any name, duplicates within the file
and against the registry by blind index); then every batch of rows is one transaction that also
records the rows it imported, so running the same file again resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot import texts
from bot.countries import find_language, normalise_phone, suggest_language
from bot.i18n import render
from bot.state import BotConfig, Step
from campaigns import outbox
from campaigns.import_file import Table, column_indexes
from campaigns.outbox import Draft
from domain.vocabulary import ChannelKind, LegalBasis
from registry import audit, invitation_links, schema
from registry.crypto import KeyRing
from registry.db import Database
from registry.keys import identity_aad, secret_aad

BATCH = 500  # rows per transaction
LOOKUP = 1000  # blind indexes per registry look-up
NEVER = datetime(2000, 1, 1, tzinfo=UTC)  # an identity the person has not written from yet


@dataclass(frozen=True, slots=True)
class Person:
    """One row that can be imported."""

    row: int
    phone: str  # E.164
    language: str
    area_id: str | None
    first_name: str | None


@dataclass(frozen=True, slots=True)
class Links:
    """Each invitation's personal link: under ``base_url``, working until the invitation is erased."""

    base_url: str
    days: int  # the unanswered invitation's erasure (BEACON_INVITATION_DAYS)


@dataclass
class Report:
    """What an import did (or a dry run would do): counts, and the row numbers of every problem."""

    rows: int = 0
    to_import: list[Person] = field(default_factory=list)
    already_imported: list[int] = field(default_factory=list)  # rows an earlier run of this file imported
    bad_numbers: list[int] = field(default_factory=list)
    duplicates_in_file: list[tuple[int, int]] = field(default_factory=list)  # (row, the first row with that number)
    duplicates_in_registry: list[int] = field(default_factory=list)
    unknown_areas: list[int] = field(default_factory=list)  # imported without an area: asked after YES
    unknown_languages: list[int] = field(default_factory=list)  # imported in the language the number suggests
    imported: int = 0  # rows imported by this run
    legal_basis: str = LegalBasis.CONSENT  # the import's (a resumed import keeps the one it began with)

    def counts(self) -> dict[str, int]:
        """The numbers, as audited and shown (no row contents)."""
        return {"rows": self.rows, "ok": len(self.to_import) + len(self.already_imported),
                "imported": self.imported, "already_imported": len(self.already_imported),
                "bad_numbers": len(self.bad_numbers), "duplicates_in_file": len(self.duplicates_in_file),
                "duplicates_in_registry": len(self.duplicates_in_registry),
                "unknown_areas": len(self.unknown_areas), "unknown_languages": len(self.unknown_languages)}

    def lines(self) -> list[str]:
        """The report as text: counts, then the rows of each problem."""
        c = self.counts()
        out = [f"rows: {c['rows']}", f"ok: {c['ok']} (imported now: {c['imported']}, "
               f"imported before: {c['already_imported']})"]
        problems: list[tuple[str, list[str]]] = [
            ("bad phone numbers", [str(n) for n in self.bad_numbers]),
            ("duplicates within the file", [f"{n} (as row {first})" for n, first in self.duplicates_in_file]),
            ("already in the registry", [str(n) for n in self.duplicates_in_registry]),
            ("unknown areas (imported without an area)", [str(n) for n in self.unknown_areas]),
            ("unknown languages (language guessed from the number)", [str(n) for n in self.unknown_languages]),
        ]
        for title, rows in problems:
            out.append(f"{title}: {len(rows)}" + (f" - rows {', '.join(rows[:50])}" if rows else "")
                       + (" ..." if len(rows) > 50 else ""))
        return out


async def check(db: Database, keys: KeyRing, bot: BotConfig, table: Table, mapping: dict[str, str],
                region: str) -> Report:
    """What importing ``table`` would do (a dry run: reads only)."""
    async with db.read() as conn:
        done = await _import_of(conn, table.sha256)
        imported_rows = await _imported_rows(conn, done) if done is not None else set()
        return await _check(conn, keys, bot, table, mapping, region, imported_rows)


async def _check(conn: AsyncConnection, keys: KeyRing, bot: BotConfig, table: Table, mapping: dict[str, str],
                 region: str, imported_rows: set[int]) -> Report:
    columns = column_indexes(table.header, mapping)

    def cell(row: tuple[str, ...], name: str) -> str:
        return row[columns[name]] if name in columns and columns[name] < len(row) else ""

    report = Report()
    first_row: dict[str, int] = {}
    candidates: list[Person] = []
    for number, row in table.numbered():
        report.rows += 1
        phone = normalise_phone(cell(row, "phone"), region)
        if phone is None:
            report.bad_numbers.append(number)
            continue
        if phone in first_row:
            report.duplicates_in_file.append((number, first_row[phone]))
            continue
        first_row[phone] = number
        language = find_language(cell(row, "language")) if cell(row, "language") else None
        if language is None:
            if "language" in columns:
                report.unknown_languages.append(number)
            language = suggest_language(phone, None, bot.default_language)
        area_id: str | None = None
        if cell(row, "area"):
            area = bot.gazetteer.find(cell(row, "area"))
            area_id = area.id if area else None
            if area is None:
                report.unknown_areas.append(number)
        if number in imported_rows:
            report.already_imported.append(number)
            continue
        candidates.append(Person(number, phone, language, area_id, cell(row, "first_name")[:64] or None))
    known = await _in_registry(conn, keys, [p.phone for p in candidates])
    for person in candidates:
        if person.phone in known:
            report.duplicates_in_registry.append(person.row)
        else:
            report.to_import.append(person)
    return report


async def _in_registry(conn: AsyncConnection, keys: KeyRing, phones: list[str]) -> set[str]:
    """The numbers the registry already holds (an opt-out marker counts: its STOP still holds)."""
    i = schema.identities.c
    by_bidx = {keys.blind_index("phone", phone): phone for phone in phones}
    found: set[str] = set()
    bidxs = list(by_bidx)
    for start in range(0, len(bidxs), LOOKUP):
        rows = await conn.execute(select(i.bidx).where(i.bidx.in_(bidxs[start:start + LOOKUP])))
        found.update(by_bidx[bytes(b)] for b in rows.scalars().all())
    return found


async def _import_of(conn: AsyncConnection, sha256: str) -> int | None:
    m = schema.imports.c
    found = (await conn.execute(select(m.id).where(m.file_sha256 == sha256))).scalar()
    return int(found) if found is not None else None


async def _imported_rows(conn: AsyncConnection, import_id: int) -> set[int]:
    ir = schema.import_rows.c
    return {int(n) for n in (await conn.execute(
        select(ir.row_number).where(ir.import_id == import_id))).scalars().all()}


async def run(db: Database, keys: KeyRing, bot: BotConfig, table: Table, mapping: dict[str, str], *,
              region: str, legal_basis: str, by: str, links: Links | None = None) -> tuple[int, Report]:
    """Import ``table`` (or resume its import): invite every new person; returns the import's id and report.

    With ``links``, each invitation ends with the person's own link to answer on a web page.
    """
    basis = None if LegalBasis(legal_basis) is LegalBasis.CONSENT else str(legal_basis)
    now = datetime.now(UTC)
    m = schema.imports.c
    async with db.write() as conn:
        import_id = await _import_of(conn, table.sha256)
        if import_id is None:
            import_id = int((await conn.execute(insert(schema.imports).values(
                file_sha256=table.sha256, region=region, legal_basis=basis, status="running", counts={},
                imported_by=by, started_at=now).returning(m.id))).scalar_one())
            await audit.append(conn, by, "import.started", str(import_id),
                               {"file_sha256": table.sha256, "legal_basis": legal_basis, "region": region})
        else:
            # A resumed import keeps the legal basis it was started with.
            basis = (await conn.execute(select(m.legal_basis).where(m.id == import_id))).scalar()
        imported_rows = await _imported_rows(conn, import_id)
    async with db.read() as conn:
        report = await _check(conn, keys, bot, table, mapping, region, imported_rows)
    report.legal_basis = basis or LegalBasis.CONSENT
    invitations: dict[str, str] = {}
    for start in range(0, len(report.to_import), BATCH):
        batch = report.to_import[start:start + BATCH]
        async with db.write() as conn:
            await _store_batch(conn, keys, import_id, basis, batch, invitations, bot.operator, links)
        report.imported += len(batch)
    async with db.write() as conn:
        total = int((await conn.execute(select(func.count()).select_from(schema.import_rows).where(
            schema.import_rows.c.import_id == import_id))).scalar_one())
        counts = {**report.counts(), "imported_total": total}
        await conn.execute(update(schema.imports).where(m.id == import_id).values(
            status="done", counts=counts, finished_at=datetime.now(UTC)))
        await audit.append(conn, by, "import.run", str(import_id),
                           {"file_sha256": table.sha256, "legal_basis": basis or "consent", **counts})
    return import_id, report


async def _store_batch(conn: AsyncConnection, keys: KeyRing, import_id: int, basis: str | None,
                       batch: list[Person], invitations: dict[str, str], operator: str,
                       links: Links | None = None) -> None:
    """Invite one batch of people, in the caller's transaction: registrants, identities, invitations, rows."""
    now = datetime.now(UTC)
    r, i = schema.registrants, schema.identities
    registrant_ids = [int(x) for x in (await conn.execute(
        insert(r).returning(r.c.id, sort_by_parameter_order=True),
        [{"language": p.language, "area_id": p.area_id, "step": Step.INVITED.value, "context": {},
          "consented": False, "opted_out": False, "created_at": now, "import_id": import_id, "invited_at": now,
          "legal_basis": basis} for p in batch])).scalars().all()]
    bidxs = [keys.blind_index("phone", p.phone) for p in batch]
    identity_ids = [int(x) for x in (await conn.execute(
        insert(i).returning(i.c.id, sort_by_parameter_order=True),
        [{"registrant_id": rid, "kind": "phone", "bidx": bidx,
          "address_ct": keys.encrypt(p.phone, identity_aad({"bidx": bidx})), "last_channel": ChannelKind.SMS,
          "preferred_channel": ChannelKind.SMS, "reachable": True, "created_at": now, "last_used_at": NEVER}
         for p, rid, bidx in zip(batch, registrant_ids, bidxs, strict=True)])).scalars().all()]
    names = [{"registrant_id": rid, "field": "first_name",
              "value_ct": keys.encrypt(p.first_name, secret_aad({"field": "first_name", "registrant_id": rid}))}
             for p, rid in zip(batch, registrant_ids, strict=True) if p.first_name]
    if names:
        await conn.execute(insert(schema.profile_secrets), names)
    drafts, new_links = [], []
    for p, rid, iid in zip(batch, registrant_ids, identity_ids, strict=True):
        if p.language not in invitations:
            invitations[p.language] = render(p.language, texts.INVITATION, operator=operator)
        text = invitations[p.language]
        if links is not None:
            token, token_hash = invitation_links.new_token()
            new_links.append({"token_hash": token_hash, "registrant_id": rid, "identity_id": iid, "created_at": now,
                              "expires_at": now + timedelta(days=links.days)})
            text += " " + render(p.language, texts.INVITATION_LINK,
                                 link=invitation_links.url(links.base_url, token))
        drafts.append(Draft(rid, iid, ChannelKind.SMS, p.phone, text))
    await invitation_links.store(conn, new_links)
    await outbox.enqueue(conn, keys, drafts)
    await conn.execute(insert(schema.import_rows), [
        {"import_id": import_id, "row_number": p.row, "registrant_id": rid}
        for p, rid in zip(batch, registrant_ids, strict=True)])


async def history(conn: AsyncConnection, limit: int = 50) -> list[dict[str, Any]]:
    """Past imports, newest first: who, when, the file's hash, the legal basis and the counts."""
    m = schema.imports.c
    rows = await conn.execute(select(schema.imports).order_by(m.id.desc()).limit(limit))
    return [{"id": row.id, "file_sha256": row.file_sha256, "region": row.region,
             "legal_basis": row.legal_basis or "consent", "status": row.status, "counts": row.counts or {},
             "imported_by": row.imported_by, "started_at": row.started_at, "finished_at": row.finished_at}
            for row in rows]
