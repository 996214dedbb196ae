"""The web sign-up's two writes: send a one-time code, and register the person once the code is right.

Until the code comes back nothing is stored as the person's: the answers travel in the page's form,
the code's row holds only hashes, and the code's message leaves the outbox linked to no one. Once
verified the person is a registrant like any other: the same profile, the same consent record (the
same notice version), so MYDATA, UPDATE, DELETE and STOP by text work as for anyone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot import texts
from bot.i18n import LANGUAGES, render
from bot.state import Profile, State, Step
from campaigns import outbox
from campaigns.outbox import Draft
from domain.vocabulary import ChannelKind
from registry import audit, schema, signup_codes, store
from registry.crypto import KeyRing
from registry.keys import identity_aad
from registry.signup_codes import Verdict

CONSENT_CHANNEL = "web"  # where the consent was given, in the consent record
TELEGRAM_PREFIX = "v-"  # a /start payload that claims a sign-up code: v-<language>-<ref> (a source code has no "-")


class Outcome(StrEnum):
    """What a verified sign-up did."""

    REGISTERED = "registered"
    ALREADY = "already"  # the number was registered before: nothing changed


@dataclass(frozen=True)
class Person:
    """Who is signing up: the channel and address the code went to, their answers and where they came from."""

    channel: str
    address: str  # the phone number; empty for Telegram, whose chat is known once it claims the code
    profile: Profile
    source_id: int | None = None


def number_index(keys: KeyRing, channel: str, address: str) -> bytes:
    """The blind index the person's identity is (or will be) found by."""
    return keys.blind_index(store.identity_kind(channel), address)


async def send_code(conn: AsyncConnection, keys: KeyRing, *, channel: str, address: str, language: str,
                    client: str, now: datetime) -> str:
    """Issue a code for ``address`` and queue it over ``channel``; the code's ref (TooManyCodes past the limits)."""
    ref, code = await signup_codes.issue(conn, keys, bidx=number_index(keys, channel, address), client=client,
                                         channel=channel, now=now)
    text = render(language, texts.WEB_CODE_MESSAGE, code=code, minutes=signup_codes.CODE_MINUTES)
    await outbox.enqueue(conn, keys, [Draft(None, None, channel, address, text)])
    await audit.append(conn, "web", "signup.code_sent", None, {"channel": channel})
    return ref


async def start_telegram(conn: AsyncConnection, keys: KeyRing, *, language: str, client: str, now: datetime) -> str:
    """A pending code for a Telegram chat to claim: the /start payload of the bot link to show."""
    ref = await signup_codes.issue_pending(conn, keys, client=client, channel=ChannelKind.TELEGRAM, now=now)
    return f"{TELEGRAM_PREFIX}{language}-{ref}"


async def claim_by_telegram(conn: AsyncConnection, keys: KeyRing, payload: str, *, bidx: bytes,
                            registrant_id: int | None, identity_id: int | None, address: str, now: datetime) -> bool:
    """A chat's ``/start v-<language>-<ref>``: draw the code and send it there. False when the payload claims
    nothing (not such a payload, or its code expired or was claimed already)."""
    prefix, _, rest = payload.partition(TELEGRAM_PREFIX)
    language, _, ref = rest.partition("-")
    if prefix or not ref:
        return False
    code = await signup_codes.bind(conn, keys, ref=ref, bidx=bidx, now=now)
    if code is None:
        return False
    text = render(language if language in LANGUAGES else "en", texts.WEB_CODE_MESSAGE, code=code,
                  minutes=signup_codes.CODE_MINUTES)
    await outbox.enqueue(conn, keys, [Draft(registrant_id, identity_id, ChannelKind.TELEGRAM, address, text)])
    await audit.append(conn, "web", "signup.code_sent", None, {"channel": ChannelKind.TELEGRAM.value})
    return True


async def verify_and_register(conn: AsyncConnection, keys: KeyRing, person: Person, *, ref: str, code: str,
                              notice_version: str, now: datetime) -> Verdict | Outcome:
    """Check the code; when right, register the person (or tell them they already are)."""
    telegram = person.channel == ChannelKind.TELEGRAM
    verdict, bidx = await signup_codes.check(
        conn, keys, ref=ref, bidx=None if telegram else number_index(keys, person.channel, person.address),
        code=code, now=now)
    if verdict is not Verdict.OK or bidx is None:
        return verdict
    language = person.profile.language or "en"
    identity = (await conn.execute(select(schema.identities).where(schema.identities.c.bidx == bidx))).first()
    if telegram:
        if identity is None or not identity.address_ct:  # the chat was erased meanwhile
            return Verdict.EXPIRED
        person = replace(person, address=keys.decrypt(identity.address_ct, identity_aad({"bidx": bidx})))
    sealed = keys.encrypt(person.address, identity_aad({"bidx": bidx}))
    before = State()
    if identity is None:
        registrant_id = (await conn.execute(insert(schema.registrants).returning(schema.registrants.c.id).values(
            step=Step.NEW.value, context={}, consented=False, opted_out=False, created_at=now,
            last_seen_at=now))).scalar_one()
        identity_id = (await conn.execute(insert(schema.identities).returning(schema.identities.c.id).values(
            registrant_id=registrant_id, kind=store.identity_kind(person.channel), bidx=bidx, address_ct=sealed,
            last_channel=person.channel, preferred_channel=person.channel, reachable=True, created_at=now,
            last_used_at=now))).scalar_one()
    else:
        registrant_id, identity_id = identity.registrant_id, identity.id
        loaded = await store.load_state(conn, keys, registrant_id)
        if loaded is not None and loaded.registered:
            text = render(loaded.language, texts.WEB_ALREADY)
            await outbox.enqueue(conn, keys, [Draft(registrant_id, identity_id, person.channel, person.address, text)])
            return Outcome.ALREADY
        before = loaded or before
        # An opt-out marker or a conversation left half-way: the number is theirs again, shown by the code.
        await conn.execute(update(schema.identities).where(schema.identities.c.id == identity_id).values(
            address_ct=sealed, last_channel=person.channel, preferred_channel=person.channel, reachable=True,
            error_code=None, last_used_at=now))
    after = State(step=Step.IDLE, profile=person.profile, consented=True, consent_at=now, source_id=person.source_id)
    await store.save_state(conn, keys, registrant_id, before, after, now)
    await store.record_consent(conn, registrant_id, notice_version, language, CONSENT_CHANNEL, now)
    await audit.append(conn, "web", "consent.given", str(registrant_id),
                       {"notice": notice_version, "channel": CONSENT_CHANNEL})
    await audit.append(conn, "web", "registrant.signed_up", str(registrant_id),
                       {"source": person.source_id} if person.source_id else {})
    welcome = render(language, texts.REGISTERED)
    await outbox.enqueue(conn, keys, [Draft(registrant_id, identity_id, person.channel, person.address, welcome)])
    return Outcome.REGISTERED
