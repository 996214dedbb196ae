"""The personal link of an invitation: ``/join/invited/<token>``, one decision, until the invitation expires.

The token is random (:data:`TOKEN_BYTES` bytes, far beyond guessing) and only its SHA-256 is stored, so the
table cannot be turned back into working links. A link is *open* while it is unused, not past its expiry (the
time the unanswered invitation is erased) and its person is still invited: once they answer by text or by the
link, it no longer works. Looking a link up changes nothing; :func:`claim` uses it up, in the caller's
transaction, and only then is the decision handed to the conversation.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.state import Step
from registry import schema
from registry.crypto import KeyRing
from registry.keys import identity_aad
from registry.times import aware

TOKEN_BYTES = 18  # 144 random bits, 24 URL-safe characters
PATH = "/join/invited/"
PROVIDER = "invitation-link"  # the provider name of the decisions it hands to the conversation as messages


class Found(Enum):
    """What a token names."""

    UNKNOWN = "unknown"  # no such link (never made, or swept away after expiring)
    GONE = "gone"  # used, expired, or its person answered otherwise


@dataclass(frozen=True, slots=True)
class Link:
    """An open link: whose invitation it is (ids and language only)."""

    id: int
    registrant_id: int
    identity_id: int
    language: str


def new_token() -> tuple[str, bytes]:
    """A fresh token and the hash that is stored."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_hash(token)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def url(base: str, token: str) -> str:
    """The link as sent: the public base URL and the token."""
    return f"{base.rstrip('/')}{PATH}{token}"


async def store(conn: AsyncConnection, links: list[dict[str, object]]) -> None:
    """Keep new links: rows of token_hash, registrant_id, identity_id, created_at, expires_at."""
    if links:
        await conn.execute(insert(schema.invitation_links), links)


async def find(conn: AsyncConnection, token: str, now: datetime) -> Link | Found:
    """The open link ``token`` names, or why there is none (reads only)."""
    if not token or len(token) > 64:
        return Found.UNKNOWN
    k, r = schema.invitation_links.c, schema.registrants.c
    row = (await conn.execute(
        select(k.id, k.registrant_id, k.identity_id, k.expires_at, k.used_at, r.step, r.consented, r.opted_out,
               r.language)
        .select_from(schema.invitation_links.outerjoin(schema.registrants, r.id == k.registrant_id))
        .where(k.token_hash == token_hash(token)))).first()
    if row is None:
        return Found.UNKNOWN
    if (row.used_at is not None or aware(row.expires_at) <= now or row.registrant_id is None
            or row.identity_id is None or row.step != Step.INVITED.value or row.consented or row.opted_out):
        return Found.GONE
    return Link(int(row.id), int(row.registrant_id), int(row.identity_id), row.language or "en")


async def address(conn: AsyncConnection, keys: KeyRing, link: Link) -> str:
    """The address the link's invitation went to (the answer is handed over as if from there)."""
    i = schema.identities.c
    identity = (await conn.execute(select(i.bidx, i.address_ct).where(i.id == link.identity_id))).one()
    return keys.decrypt(identity.address_ct, identity_aad({"bidx": identity.bidx}))


async def use(conn: AsyncConnection, link_id: int, now: datetime) -> None:
    """Mark the link used, once its answer is stored."""
    k = schema.invitation_links.c
    await conn.execute(update(schema.invitation_links).where(k.id == link_id, k.used_at.is_(None)).values(used_at=now))


async def sweep(conn: AsyncConnection, now: datetime) -> int:
    """Delete the links past their expiry (used or not: nothing is left to decide); how many."""
    gone = await conn.execute(delete(schema.invitation_links).where(schema.invitation_links.c.expires_at < now))
    return int(gone.rowcount or 0)
