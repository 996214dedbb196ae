"""Console accounts and browser sessions.

Passwords are hashed with scrypt (memory-hard; parameters stored with each hash so they can be
raised later), in threads of their own, HASHING_THREADS at a time: a check takes about 0.1 s and
32 MiB, which on the event loop would stall every request meanwhile. A session is a random cookie
value of which only a SHA-256 digest is stored, with its own CSRF token, an idle timeout and an
absolute lifetime.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from registry import audit, schema
from registry.db import Database
from registry.times import aware
from registry.tokens import STAFF_ROLES, authenticate

# scrypt with N=2^15, r=8 takes 32 MiB and about 0.1 s: slow enough to make guessing costly.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MIN_PASSWORD = 12
IDLE = timedelta(hours=2)
LIFETIME = timedelta(hours=12)
HASHING_THREADS = 2
# The semaphore in front of scrypt: a pool of its own, so queued checks neither hold the event loop
# nor take the default executor's threads (DNS look-ups) and their memory stays bounded.
_HASHING = ThreadPoolExecutor(max_workers=HASHING_THREADS, thread_name_prefix="scrypt")


class UserError(Exception):
    """An account request that cannot be done; the message is safe to show."""


@dataclass(frozen=True)
class Session:
    """A signed-in browser."""

    id_hash: str
    actor: str  # "user:NAME" or "token:NAME": what the audit log records
    role: str
    csrf: str
    language: str
    expires_at: datetime

    @property
    def name(self) -> str:
        """The person's user or token name, without the kind."""
        return self.actor.partition(":")[2]


def hash_password(password: str) -> str:
    """An scrypt hash with its parameters and salt: ``scrypt$N$r$p$salt$key``."""
    salt = secrets.token_bytes(16)
    key = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(password.encode())
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(key).decode()}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash made by :func:`hash_password`."""
    try:
        kind, n, r, p, salt, key = stored.split("$")
        if kind != "scrypt":
            return False
        Scrypt(salt=base64.b64decode(salt), length=32, n=int(n), r=int(r), p=int(p)).verify(
            password.encode(), base64.b64decode(key))
    except (ValueError, InvalidKey):
        return False
    return True


# Compared against when the username is unknown, so both paths cost the same scrypt.
_DECOY = hash_password(secrets.token_urlsafe(16))


async def hashed(password: str) -> str:
    """:func:`hash_password` in a hashing thread."""
    return await asyncio.get_running_loop().run_in_executor(_HASHING, hash_password, password)


async def matches(password: str, stored: str) -> bool:
    """:func:`check_password` in a hashing thread."""
    return await asyncio.get_running_loop().run_in_executor(_HASHING, check_password, password, stored)


def check_new_password(password: str, username: str) -> None:
    """Refuse passwords that are too short or are the username."""
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    if username.lower() in password.lower():
        raise UserError("the password must not contain the username")


async def create_user(db: Database, username: str, role: str, password: str, *, by: str = "cli") -> None:
    """Add a console account."""
    if role not in STAFF_ROLES:
        raise UserError(f"role must be one of {', '.join(STAFF_ROLES)}")
    if not username or len(username) > 64 or not username.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UserError("username must be 1 to 64 letters, digits, '.', '-' or '_'")
    check_new_password(password, username)
    password_hash = await hashed(password)
    try:
        async with db.write() as conn:
            await conn.execute(schema.console_users.insert().values(
                username=username, role=role, password_hash=password_hash, created_at=datetime.now(UTC)))
            await audit.append(conn, by, "user.created", username, {"role": role})
    except IntegrityError:
        raise UserError(f"a user named {username!r} already exists") from None


async def set_password(db: Database, username: str, password: str, *, by: str = "cli") -> None:
    """Replace a user's password and end their sessions."""
    check_new_password(password, username)
    password_hash = await hashed(password)
    u = schema.console_users.c
    async with db.write() as conn:
        done = await conn.execute(update(schema.console_users).where(u.username == username)
                                  .values(password_hash=password_hash))
        if done.rowcount == 0:
            raise UserError(f"no user named {username!r}")
        await conn.execute(delete(schema.console_sessions).where(
            schema.console_sessions.c.actor == f"user:{username}"))
        await audit.append(conn, by, "user.password_set", username)


async def disable_user(db: Database, username: str, *, by: str = "cli") -> None:
    """Stop a user from signing in and end their sessions."""
    u = schema.console_users.c
    async with db.write() as conn:
        done = await conn.execute(update(schema.console_users).where(u.username == username, u.disabled_at.is_(None))
                                  .values(disabled_at=datetime.now(UTC)))
        if done.rowcount == 0:
            raise UserError(f"no active user named {username!r}")
        await conn.execute(delete(schema.console_sessions).where(
            schema.console_sessions.c.actor == f"user:{username}"))
        await audit.append(conn, by, "user.disabled", username)


async def verify_user(db: Database, username: str, password: str) -> str | None:
    """The role of an active user whose password matches, else None (in constant work)."""
    u = schema.console_users.c
    async with db.read() as conn:
        row = (await conn.execute(select(u.role, u.password_hash).where(
            u.username == username, u.disabled_at.is_(None)))).first()
    if row is None:
        await matches(password, _DECOY)
        return None
    return str(row.role) if await matches(password, row.password_hash) else None


async def verify_token(db: Database, token: str) -> tuple[str, str] | None:
    """(name, role) of a valid staff API token (a partner's token opens the API only, not the console)."""
    caller = await authenticate(db, token)
    return (caller.name, caller.role) if caller and caller.role in STAFF_ROLES else None


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


async def open_session(db: Database, actor: str, role: str, language: str) -> tuple[str, Session]:
    """Start a session; returns the cookie value (never stored) and the session."""
    cookie = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session = Session(_digest(cookie), actor, role, secrets.token_urlsafe(32), language, now + LIFETIME)
    async with db.write() as conn:
        await conn.execute(delete(schema.console_sessions).where(schema.console_sessions.c.expires_at < now))
        await conn.execute(schema.console_sessions.insert().values(
            id_hash=session.id_hash, actor=actor, role=role, csrf=session.csrf, language=language,
            created_at=now, expires_at=session.expires_at, last_seen_at=now))
        await audit.append(conn, actor, "console.signed_in", None, {"role": role})
    return cookie, session


async def find_session(db: Database, cookie: str) -> Session | None:
    """The live session of a cookie; an idle or expired one is ended."""
    s = schema.console_sessions.c
    digest = _digest(cookie)
    now = datetime.now(UTC)
    async with db.read() as conn:
        row = (await conn.execute(select(schema.console_sessions).where(s.id_hash == digest))).first()
    if row is None:
        return None
    if aware(row.expires_at) <= now or aware(row.last_seen_at) + IDLE <= now:
        await close_session(db, digest, reason="expired")
        return None
    if now - aware(row.last_seen_at) > timedelta(minutes=1):  # one write a minute at most per session
        async with db.write() as conn:
            await conn.execute(update(schema.console_sessions).where(s.id_hash == digest).values(last_seen_at=now))
    return Session(row.id_hash, row.actor, row.role, row.csrf, row.language, aware(row.expires_at))


async def set_language(db: Database, session: Session, language: str) -> None:
    """Remember the console language a session chose."""
    s = schema.console_sessions.c
    async with db.write() as conn:
        await conn.execute(update(schema.console_sessions).where(s.id_hash == session.id_hash)
                           .values(language=language))


async def close_session(db: Database, id_hash: str, *, reason: str = "signed_out") -> None:
    """End a session."""
    s = schema.console_sessions.c
    async with db.write() as conn:
        row = (await conn.execute(select(s.actor).where(s.id_hash == id_hash))).first()
        await conn.execute(delete(schema.console_sessions).where(s.id_hash == id_hash))
        if row is not None:
            await audit.append(conn, row.actor, "console.signed_out", None, {"reason": reason})


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a submitted CSRF token."""
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())
