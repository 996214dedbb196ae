"""API tokens: shown once, stored as hashes, revocable."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from registry import audit, schema
from registry.db import Database

ROLES = ("admin", "responder", "analyst", "auditor", "fieldworker")


class TokenError(Exception):
    """A token request that cannot be done (unknown role, duplicate or unknown name)."""


@dataclass(frozen=True)
class Caller:
    """Who is calling the API."""

    name: str
    role: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(db: Database, role: str, name: str) -> str:
    """Make a token for ``name`` with ``role``; returns the token, which is never stored."""
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}")
    if not name or len(name) > 64:
        raise TokenError("name must be 1 to 64 characters")
    token = "bcn_" + secrets.token_urlsafe(32)
    try:
        async with db.write() as conn:
            await conn.execute(schema.api_tokens.insert().values(
                name=name, role=role, token_hash=_hash(token), created_at=datetime.now(UTC)))
            await audit.append(conn, "cli", "token.created", name, {"role": role})
    except IntegrityError:
        raise TokenError(f"a token named {name!r} already exists") from None
    return token


async def revoke(db: Database, name: str) -> None:
    """Make a token stop working."""
    async with db.write() as conn:
        result = await conn.execute(update(schema.api_tokens).where(
            schema.api_tokens.c.name == name, schema.api_tokens.c.revoked_at.is_(None)
        ).values(revoked_at=datetime.now(UTC)))
        if result.rowcount == 0:
            raise TokenError(f"no active token named {name!r}")
        # Console sessions opened with the token end with it.
        await conn.execute(delete(schema.console_sessions).where(schema.console_sessions.c.actor == f"token:{name}"))
        await audit.append(conn, "cli", "token.revoked", name)


async def authenticate(db: Database, token: str) -> Caller | None:
    """The caller a bearer token belongs to, or None."""
    t = schema.api_tokens.c
    async with db.read() as conn:
        row = (await conn.execute(select(t.name, t.role).where(
            t.token_hash == _hash(token), t.revoked_at.is_(None)))).first()
    return Caller(row.name, row.role) if row else None
