"""One-time codes of the web sign-up: proof that a person holds the number they typed.

A code is six random digits, sent over the person's chosen channel. Only keyed hashes are stored:
the code's (bound to the row's random ref), the number's blind index and the client address's. A
code expires after :data:`CODE_MINUTES`, takes :data:`MAX_ATTEMPTS` wrong tries at most and works
once. Codes are limited per number and per client address within an hour. Rows older than a day are deleted
whenever a code is issued.

Telegram has no number to type: the page asks for a *pending* code (:func:`issue_pending`) and links
to the bot with its ref; the person's ``/start`` binds the code to their chat (:func:`bind`), which
is when the code is drawn and sent. Until then the row's index is a placeholder nothing can match.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from registry import schema
from registry.crypto import KeyRing
from registry.signins import address_key
from registry.times import aware

CODE_MINUTES = 10
MAX_ATTEMPTS = 5
PER_NUMBER_PER_HOUR = 3
PER_CLIENT_PER_HOUR = 10
KEEP = timedelta(days=1)


class Verdict(StrEnum):
    """What checking a typed code found."""

    OK = "ok"
    WRONG = "wrong"  # tries left
    EXPIRED = "expired"  # expired, used, tried too often, or no such code


class TooManyCodes(Exception):
    """The number or the client asked for too many codes lately."""


def client_key(keys: KeyRing, address: str) -> str:
    """The keyed hash a client address's codes count under (an IPv6 address as its /64)."""
    return keys.blind_index("signup-client", address_key(address)).hex()


def _code_hash(keys: KeyRing, ref: str, code: str) -> bytes:
    return keys.blind_index("signup-code", f"{ref}:{code}")


def _placeholder(keys: KeyRing, ref: str) -> bytes:
    """The index of a pending Telegram code, before a chat has claimed it."""
    return keys.blind_index("signup-pending", ref)


async def _limit(conn: AsyncConnection, bidx: bytes | None, client: str, now: datetime) -> None:
    c = schema.signup_codes.c
    await conn.execute(delete(schema.signup_codes).where(c.created_at < now - KEEP))
    hour = now - timedelta(hours=1)
    by_client = (await conn.execute(select(func.count()).where(c.client == client, c.created_at > hour))).scalar_one()
    by_number = 0 if bidx is None else (await conn.execute(
        select(func.count()).where(c.bidx == bidx, c.created_at > hour))).scalar_one()
    if by_number >= PER_NUMBER_PER_HOUR or by_client >= PER_CLIENT_PER_HOUR:
        raise TooManyCodes()


def _new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


async def issue(conn: AsyncConnection, keys: KeyRing, *, bidx: bytes, client: str, channel: str,
                now: datetime) -> tuple[str, str]:
    """A new code for the number of blind index ``bidx``: (ref, code); TooManyCodes past the limits."""
    await _limit(conn, bidx, client, now)
    ref, code = secrets.token_urlsafe(18), _new_code()
    await conn.execute(insert(schema.signup_codes).values(
        ref=ref, bidx=bidx, client=client, channel=channel, code_hash=_code_hash(keys, ref, code), attempts=0,
        created_at=now, expires_at=now + timedelta(minutes=CODE_MINUTES)))
    return ref, code


async def issue_pending(conn: AsyncConnection, keys: KeyRing, *, client: str, channel: str, now: datetime) -> str:
    """A code to be claimed by a chat (Telegram): its ref; TooManyCodes past the client's limit."""
    await _limit(conn, None, client, now)
    ref = secrets.token_urlsafe(18)
    await conn.execute(insert(schema.signup_codes).values(
        ref=ref, bidx=_placeholder(keys, ref), client=client, channel=channel,
        code_hash=secrets.token_bytes(32), attempts=0, created_at=now,
        expires_at=now + timedelta(minutes=CODE_MINUTES)))
    return ref


async def bind(conn: AsyncConnection, keys: KeyRing, *, ref: str, bidx: bytes, now: datetime) -> str | None:
    """The chat of index ``bidx`` claims pending code ``ref``: the code to send it, or None (no such code,
    expired, or claimed already)."""
    c = schema.signup_codes.c
    row = (await conn.execute(select(schema.signup_codes).where(c.ref == ref))).first()
    if (row is None or row.used_at is not None or aware(row.expires_at) <= now
            or not hmac.compare_digest(row.bidx, _placeholder(keys, ref))):
        return None
    code = _new_code()
    await conn.execute(update(schema.signup_codes).where(c.id == row.id).values(
        bidx=bidx, code_hash=_code_hash(keys, ref, code), expires_at=now + timedelta(minutes=CODE_MINUTES)))
    return code


async def check(conn: AsyncConnection, keys: KeyRing, *, ref: str, bidx: bytes | None, code: str,
                now: datetime) -> tuple[Verdict, bytes | None]:
    """Check a typed code against the code ``ref`` sent to the number of ``bidx`` (None: to the chat that
    claimed it); a right one is used up. The verdict, and the index the code was sent to."""
    c = schema.signup_codes.c
    row = (await conn.execute(select(schema.signup_codes).where(c.ref == ref))).first()
    if row is None or row.used_at is not None or aware(row.expires_at) <= now or row.attempts >= MAX_ATTEMPTS:
        return Verdict.EXPIRED, None
    if bidx is None:  # Telegram: whichever chat claimed the code; none yet, and no code can be right
        if hmac.compare_digest(row.bidx, _placeholder(keys, ref)):
            return Verdict.WRONG, None
    elif not hmac.compare_digest(row.bidx, bidx):
        return Verdict.EXPIRED, None
    typed = "".join(str(int(ch)) for ch in code if ch.isdecimal())  # any digit script: ١٢٣ is 123
    if hmac.compare_digest(_code_hash(keys, ref, typed), row.code_hash):
        await conn.execute(update(schema.signup_codes).where(c.id == row.id).values(used_at=now))
        return Verdict.OK, bytes(row.bidx)
    await conn.execute(update(schema.signup_codes).where(c.id == row.id).values(attempts=row.attempts + 1))
    return (Verdict.WRONG if row.attempts + 1 < MAX_ATTEMPTS else Verdict.EXPIRED), None
