"""Console sign-in limits, kept in the database so that every web process shares them.

Each attempt that gets to a password or token check is written down first, as a failure, and
cleared if it turns out right: concurrent attempts cannot slip past a limit together. Rows older
than the window are deleted as new attempts come.

- A client address may fail ADDRESS_FAILURES times in the window, then waits until the oldest
  failure ages out. An IPv6 address counts as its /64 (one host usually holds a whole /64); an
  IPv4 address as itself.
- A username is never locked: after USER_FREE_FAILURES failures each further attempt waits a
  delay that doubles up to USER_MAX_DELAY, so its owner still gets in with the right password,
  while a guesser gets a handful of tries an hour.
- Once the whole service has seen SERVICE_FAILURES failures in the window, an address that
  failed in it waits until its own failures age out; addresses without failures still get through.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from registry import schema
from registry.db import Database
from registry.times import aware

WINDOW = timedelta(minutes=15)
ADDRESS_FAILURES = 20
TOKEN_FAILURES = 10  # token attempts from one address (a token cannot be slowed down by name)
USER_FREE_FAILURES = 5
USER_FIRST_DELAY = timedelta(seconds=2)
USER_MAX_DELAY = timedelta(minutes=5)
SERVICE_FAILURES = 300
# Claims from every process take turns on PostgreSQL (SQLite has one writer anyway).
_CLAIM_LOCK = text("SELECT pg_advisory_xact_lock(7466354)")


def address_key(address: str) -> str:
    """The key an address's failures count under: an IPv6 address's /64, an IPv4 address itself."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return f"addr:{address[:60]}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:10.0.0.1 is 10.0.0.1
            return f"addr:{ip.ipv4_mapped}"
        return f"addr:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"addr:{ip}"


def user_key(username: str) -> str:
    """A username's key: a digest, as people sometimes type their password into the username field."""
    return "user:" + hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]


def token_key(address: str) -> str:
    """Token attempts count per address."""
    return "token:" + address_key(address).removeprefix("addr:")


@dataclass(frozen=True)
class Claim:
    """One attempt: refused (``wait`` seconds to go) or allowed and counted as failed until settled."""

    wait: float
    subject: str
    ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Seen:
    count: int
    oldest: datetime | None
    newest: datetime | None


async def _seen(conn: AsyncConnection, where: ColumnElement[bool]) -> _Seen:
    f = schema.signin_failures.c
    row = (await conn.execute(select(func.count(), func.min(f.at), func.max(f.at)).where(where))).one()
    return _Seen(int(row[0]), aware(row[1]) if row[1] else None, aware(row[2]) if row[2] else None)


def _user_delay(failures: int) -> timedelta:
    """How long after its last failure a username may be tried again."""
    if failures < USER_FREE_FAILURES:
        return timedelta(0)
    doublings = min(failures - USER_FREE_FAILURES, 16)
    return min(USER_MAX_DELAY, USER_FIRST_DELAY * (1 << doublings))


async def claim(db: Database, address: str, subject: str, now: datetime | None = None) -> Claim:
    """Take one sign-in attempt for ``subject`` (a user_key or token_key) from ``address``."""
    now = now or datetime.now(UTC)
    f = schema.signin_failures.c
    here = address_key(address)
    async with db.write() as conn:
        if not db.sqlite:
            await conn.execute(_CLAIM_LOCK)
        await conn.execute(delete(schema.signin_failures).where(f.at <= now - WINDOW))
        mine = await _seen(conn, f.key == here)
        theirs = await _seen(conn, f.key == subject)
        everyone = await _seen(conn, f.key.startswith("addr:"))
        until = [now]
        if mine.count >= ADDRESS_FAILURES and mine.oldest:
            until.append(mine.oldest + WINDOW)
        if subject.startswith("token:") and theirs.count >= TOKEN_FAILURES and theirs.oldest:
            until.append(theirs.oldest + WINDOW)
        if subject.startswith("user:") and theirs.newest:
            until.append(theirs.newest + _user_delay(theirs.count))
        if everyone.count >= SERVICE_FAILURES and mine.newest:
            until.append(mine.newest + WINDOW)
        wait = (max(until) - now).total_seconds()
        if wait > 0:
            return Claim(wait, subject)
        ids = [(await conn.execute(schema.signin_failures.insert().values(key=key, at=now)
                                   .returning(f.id))).scalar_one() for key in (here, subject)]
    return Claim(0.0, subject, tuple(int(i) for i in ids))


async def succeeded(db: Database, attempt: Claim) -> None:
    """A right password or token: forget this attempt and the subject's failures (not the address's)."""
    f = schema.signin_failures.c
    async with db.write() as conn:
        await conn.execute(delete(schema.signin_failures).where(or_(f.id.in_(attempt.ids), f.key == attempt.subject)))
