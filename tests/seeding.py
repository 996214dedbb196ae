"""Registered people written straight into the database, as registration would leave them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from registry import schema
from registry.db import Database
from registry.keys import KeyHolder, identity_aad, secret_aad
from registry.store import identity_kind

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
            bidx = ring.blind_index(identity_kind(channel), phone(n))
            identities.append({"registrant_id": n, "kind": identity_kind(channel), "bidx": bidx,
                               "address_ct": ring.encrypt(phone(n), identity_aad({"bidx": bidx})),
                               "last_channel": channel, "preferred_channel": channel, "reachable": True,
                               "created_at": now, "last_used_at": now})
        async with db.write() as conn:
            await conn.execute(schema.registrants.insert(), people)
            await conn.execute(schema.identities.insert(), identities)


async def seed_profiles(db: Database, holder: KeyHolder, profiles: Sequence[Mapping[str, object]], *,
                        first_id: int = 1, channel: str = "sms", batch: int = 5000) -> None:
    """Registered people with full profiles, sealed as registration seals them, ids from ``first_id``.

    Each profile may give ``area_id`` (required), ``language``, ``nationality``, ``gender``, ``age_band``,
    ``household_size``, and the sealed ``first_name`` and ``family_contact``; the phone is ``phone(id)``,
    known on ``channel`` (a simulator sender is an identity of its own, never a phone).
    The proof of consent is kept too, so MYDATA shows the consent date as it would after registering.
    """
    ring = holder.ring
    now = datetime.now(UTC)
    for start in range(0, len(profiles), batch):
        chunk = list(enumerate(profiles[start:start + batch], start=first_id + start))
        people, identities, secrets_, consents = [], [], [], []
        for n, p in chunk:
            language = str(p.get("language") or LANGUAGES[n % 3])
            people.append({"id": n, "language": language, "area_id": p["area_id"],
                           "nationality": p.get("nationality"), "gender": p.get("gender"),
                           "age_band": p.get("age_band"), "household_size": p.get("household_size"),
                           "step": "idle", "context": {}, "consented": True, "opted_out": False,
                           "created_at": now, "confirmed_at": now, "last_seen_at": now, "share_family": False})
            bidx = ring.blind_index(identity_kind(channel), phone(n))
            identities.append({"registrant_id": n, "kind": identity_kind(channel), "bidx": bidx,
                               "address_ct": ring.encrypt(phone(n), identity_aad({"bidx": bidx})),
                               "last_channel": channel, "preferred_channel": channel, "reachable": True,
                               "created_at": now, "last_used_at": now})
            for field in ("first_name", "family_contact"):
                value = p.get(field)
                if value is not None:
                    secrets_.append({"registrant_id": n, "field": field, "value_ct": ring.encrypt(
                        str(value), secret_aad({"field": field, "registrant_id": n}))})
            consents.append({"registrant_id": n, "notice_version": "2026-11", "language": language, "channel": channel,
                             "given_at": now})
        async with db.write() as conn:
            await conn.execute(schema.registrants.insert(), people)
            await conn.execute(schema.identities.insert(), identities)
            if secrets_:
                await conn.execute(schema.profile_secrets.insert(), secrets_)
            await conn.execute(schema.consents.insert(), consents)
