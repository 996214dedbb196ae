"""Outreach sources: where people heard of Beacon (a poster, a community centre, a partner).

A source has a short code used in its link (``/join/<code>``), its QR code, its Telegram deep link and
the SMS keyword ``JOIN <code>``; it may pre-select an area and a language. A registrant keeps only the
id of the source they came through, so registrations can be counted per source and nothing more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.state import SourcePreset
from registry import schema

# Letters and digits only: the code must survive an SMS keyword, a URL path and a Telegram start payload.
CODE = re.compile(r"[A-Z0-9]{2,16}")


class SourceError(ValueError):
    """A source that cannot be created; ``field`` names the value at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Source:
    """One outreach source."""

    id: int
    code: str
    name: str
    area_id: str | None
    language: str | None
    created_by: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The API's view (counts per source come only from the stats API, suppressed)."""
        return {"id": self.id, "code": self.code, "name": self.name, "area": self.area_id, "language": self.language,
                "created_by": self.created_by, "created_at": self.created_at.isoformat()}


def normalise_code(raw: str) -> str | None:
    """A code as stored (upper case), or None when ``raw`` cannot be one."""
    code = raw.strip().upper()
    return code if CODE.fullmatch(code) else None


def _source(row: Any) -> Source:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return Source(int(row.id), row.code, row.name, row.area_id, row.language, row.created_by, created)


async def create(conn: AsyncConnection, code: str, name: str, area_id: str | None, language: str | None,
                 created_by: str) -> Source:
    """Add a source; SourceError when the code is malformed or taken."""
    normal = normalise_code(code)
    if normal is None:
        raise SourceError("code", "code must be 2 to 16 letters A-Z or digits")
    if not name.strip() or len(name) > 100:
        raise SourceError("name", "name must be 1 to 100 characters")
    taken = (await conn.execute(select(schema.sources.c.id).where(schema.sources.c.code == normal))).first()
    if taken is not None:
        raise SourceError("code", f"code {normal} is already used")
    try:
        new_id = (await conn.execute(insert(schema.sources).returning(schema.sources.c.id).values(
            code=normal, name=name.strip(), area_id=area_id or None, language=language or None,
            created_by=created_by, created_at=datetime.now(UTC)))).scalar_one()
    except IntegrityError:  # another admin took the code meanwhile
        raise SourceError("code", f"code {normal} is already used") from None
    found = await get(conn, int(new_id))
    assert found is not None
    return found


async def get(conn: AsyncConnection, source_id: int) -> Source | None:
    """One source by id."""
    row = (await conn.execute(select(schema.sources).where(schema.sources.c.id == source_id))).first()
    return _source(row) if row is not None else None


async def by_code(conn: AsyncConnection, raw: str) -> Source | None:
    """The source with this code (any case), or None."""
    code = normalise_code(raw)
    if code is None:
        return None
    row = (await conn.execute(select(schema.sources).where(schema.sources.c.code == code))).first()
    return _source(row) if row is not None else None


async def preset(conn: AsyncConnection, raw: str) -> SourcePreset | None:
    """What the conversation needs to know of the source a message names."""
    found = await by_code(conn, raw)
    return SourcePreset(found.id, found.language, found.area_id) if found is not None else None


async def all_sources(conn: AsyncConnection) -> list[Source]:
    """Every source, newest first."""
    rows = (await conn.execute(select(schema.sources).order_by(schema.sources.c.id.desc()))).all()
    return [_source(row) for row in rows]


def source_code_in(text: str, payload: str | None) -> str | None:
    """The word that may name a source: a deep link's payload, or the second word of ``JOIN <code>``."""
    if payload:
        return payload
    words = text.split()
    return words[1] if len(words) == 2 else None
