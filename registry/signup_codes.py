"""One-time codes of the web sign-up: proof that a person holds the number they typed.

A code is six random digits, sent over the person's chosen channel. Only keyed hashes are stored:
the code's (bound to the row's random ref), the number's blind index and the client address's. A
code expires after :data:`CODE_MINUTES`, takes :data:`MAX_ATTEMPTS` wrong tries at most and works
once. Codes are limited per number and per client address within an hour. Rows go a day after.
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


async def issue(conn: AsyncConnection, keys: KeyRing, *, bidx: bytes, client: str, channel: str,
                now: datetime) -> tuple[str, str]:
    """A new code for the number of blind index ``bidx``: (ref, code); TooManyCodes past the limits."""
    c = schema.signup_codes.c
    await conn.execute(delete(schema.signup_codes).where(c.created_at < now - KEEP))
    hour = now - timedelta(hours=1)
    by_number = (await conn.execute(select(func.count()).where(c.bidx == bidx, c.created_at > hour))).scalar_one()
    by_client = (await conn.execute(select(func.count()).where(c.client == client, c.created_at > hour))).scalar_one()
    if by_number >= PER_NUMBER_PER_HOUR or by_client >= PER_CLIENT_PER_HOUR:
        raise TooManyCodes()
    ref = secrets.token_urlsafe(18)
    code = f"{secrets.randbelow(10**6):06d}"
    await conn.execute(insert(schema.signup_codes).values(
        ref=ref, bidx=bidx, client=client, channel=channel, code_hash=_code_hash(keys, ref, code), attempts=0,
        created_at=now, expires_at=now + timedelta(minutes=CODE_MINUTES)))
    return ref, code


async def check(conn: AsyncConnection, keys: KeyRing, *, ref: str, bidx: bytes, code: str, now: datetime) -> Verdict:
    """Check a typed code against the code ``ref`` sent to the number of ``bidx``; a right one is used up."""
    c = schema.signup_codes.c
    row = (await conn.execute(select(schema.signup_codes).where(c.ref == ref))).first()
    if (row is None or not hmac.compare_digest(row.bidx, bidx) or row.used_at is not None
            or aware(row.expires_at) <= now or row.attempts >= MAX_ATTEMPTS):
        return Verdict.EXPIRED
    typed = "".join(str(int(ch)) for ch in code if ch.isdecimal())  # any digit script: ١٢٣ is 123
    if hmac.compare_digest(_code_hash(keys, ref, typed), row.code_hash):
        await conn.execute(update(schema.signup_codes).where(c.id == row.id).values(used_at=now))
        return Verdict.OK
    await conn.execute(update(schema.signup_codes).where(c.id == row.id).values(attempts=row.attempts + 1))
    return Verdict.WRONG if row.attempts + 1 < MAX_ATTEMPTS else Verdict.EXPIRED
