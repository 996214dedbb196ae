"""Registered people written straight into the database, as registration would leave them."""

from __future__ import annotations

from datetime import UTC, datetime

from registry import schema
from registry.db import Database
from registry.keys import KeyHolder, identity_aad

LANGUAGES = ("en", "fr", "ar")


def phone(n: int) -> str:
    """The n-th synthetic Nigerian mobile number."""
    return f"+23480{n:08d}"


async def seed_registrants(db: Database, holder: KeyHolder, count: int, *, area: str = "tripoli",
                           channel: str = "sms", batch: int = 5000) -> None:
    """``count`` consenting registrants in ``area``, languages en/fr/ar in turn, reachable on ``channel``."""
    ring = holder.ring
    now = datetime.now(UTC)
    for start in range(0, count, batch):
        ids = range(start + 1, min(start + batch, count) + 1)
        people = [{"id": n, "language": LANGUAGES[n % 3], "area_id": area, "step": "idle", "context": {},
                   "consented": True, "opted_out": False, "created_at": now, "confirmed_at": now,
                   "last_seen_at": now, "share_family": False} for n in ids]
        identities = []
        for n in ids:
            bidx = ring.blind_index("phone", phone(n))
            identities.append({"registrant_id": n, "kind": "phone", "bidx": bidx,
                               "address_ct": ring.encrypt(phone(n), identity_aad({"bidx": bidx})),
                               "last_channel": channel, "preferred_channel": channel, "reachable": True,
                               "created_at": now, "last_used_at": now})
        async with db.write() as conn:
            await conn.execute(schema.registrants.insert(), people)
            await conn.execute(schema.identities.insert(), identities)
