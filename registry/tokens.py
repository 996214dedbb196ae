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

STAFF_ROLES = ("admin", "responder", "analyst", "auditor", "fieldworker")  # people: console accounts and their tokens
PARTNER = "partner"  # an organisation's token, bound to one sharing arrangement
ROLES = (*STAFF_ROLES, PARTNER)


class TokenError(Exception):
    """A token request that cannot be done (unknown role, duplicate or unknown name)."""


@dataclass(frozen=True)
class Caller:
    """Who is calling the API."""

    name: str
    role: str
    arrangement_id: int | None = None  # a partner's arrangement


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(db: Database, role: str, name: str, arrangement_id: int | None = None) -> str:
    """Make a token for ``name`` with ``role``; returns the token, which is never stored.

    A partner token is bound to one sharing arrangement (``arrangement_id``); no other token is.
    """
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}")
    if not name or len(name) > 64:
        raise TokenError("name must be 1 to 64 characters")
    if role == PARTNER and arrangement_id is None:
        raise TokenError("a partner token needs --arrangement ID: the arrangement it may fetch under")
    if role != PARTNER and arrangement_id is not None:
        raise TokenError("--arrangement is for partner tokens only")
    token = "bcn_" + secrets.token_urlsafe(32)
    try:
        async with db.write() as conn:
            if arrangement_id is not None and (await conn.execute(select(schema.arrangements.c.id).where(
                    schema.arrangements.c.id == arrangement_id))).first() is None:
                raise TokenError(f"no arrangement {arrangement_id}")
            await conn.execute(schema.api_tokens.insert().values(
                name=name, role=role, token_hash=_hash(token), created_at=datetime.now(UTC),
                arrangement_id=arrangement_id))
            detail: dict[str, object] = {"role": role}
            if arrangement_id is not None:
                detail["arrangement"] = arrangement_id
            await audit.append(conn, "cli", "token.created", name, detail)
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
        row = (await conn.execute(select(t.name, t.role, t.arrangement_id).where(
            t.token_hash == _hash(token), t.revoked_at.is_(None)))).first()
    return Caller(row.name, row.role, row.arrangement_id) if row else None
