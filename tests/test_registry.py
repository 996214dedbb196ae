"""Storage: migrations, encryption, blind indexes, the registry's writes, the audit chain, tokens and key rotation.

Every test that touches a database takes ``database_url``, so it runs on a real SQLite file and,
when BEACON_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import LargeBinary, func, inspect, select, text

from beacon import config
from beacon.context import open_beacon
from bot.state import Profile, State, Step
from channels.base import Inbound
from registry import audit, keys, schema, store, tokens
from registry.crypto import KeyRing, KeyringError, MasterKeys
from registry.db import Database
from tests.conftest import StartBeacon, dev_keys, environment
from tests.helpers import eventually

PHONE = "+2348012345678"
CONTACT = "+2348087654321"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.migrate()
    yield database
    await database.close()


@pytest.fixture
def master() -> MasterKeys:
    return MasterKeys.parse(dev_keys())


def inbound(address: str, text: str = "JOIN", channel: str = "sms", provider_id: str | None = None) -> Inbound:
    return Inbound(channel=channel, address=address, text=text, provider_id=provider_id or secrets.token_hex(8),
                   received_at=datetime.now(UTC))


async def receive(db: Database, ring: KeyRing, message: Inbound, provider: str = "twilio") -> store.Stored | None:
    async with db.write() as conn:
        return (await store.store_inbound(conn, ring, [(provider, message)]))[0]


async def count(db: Database, table: str, *where: object) -> int:
    t = schema.metadata.tables[table]
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(t).where(*where))).scalar_one())


# --------------------------------------------------------------------------- migrations


async def test_migrations_are_idempotent(database_url: str) -> None:
    for _ in range(2):  # a second process migrating the same database changes nothing
        database = Database(database_url)
        try:
            await database.migrate()
            await database.migrate()
            async with database.read() as conn:
                tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
                versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        finally:
            await database.close()
        assert set(schema.metadata.tables) <= tables
        assert len(versions) == 1


# --------------------------------------------------------------------------- encryption


def ring(active: str = "a", **extra: bytes) -> KeyRing:
    return KeyRing({active: b"\x01" * 32, **extra}, active, b"\x02" * 32)


def test_keyring_round_trip() -> None:
    keyring = ring()
    sealed = keyring.encrypt("Amina — أمينة", "profile_secrets.first_name:1")
    assert keyring.decrypt(sealed, "profile_secrets.first_name:1") == "Amina — أمينة"
    assert keyring.key_id_of(sealed) == "a"
    assert b"Amina" not in sealed
    # A fresh nonce each time: equal plaintexts do not give equal ciphertexts.
    assert keyring.encrypt("x", "aad") != keyring.encrypt("x", "aad")


def test_tampered_ciphertext_does_not_open() -> None:
    keyring = ring()
    sealed = bytearray(keyring.encrypt("+2348012345678", "identities.address:ab"))
    for position in (len(sealed) - 1, len(sealed) // 2, 2 + 1 + 5):  # tag, ciphertext, nonce
        tampered = bytearray(sealed)
        tampered[position] ^= 0x01
        with pytest.raises(KeyringError):
            keyring.decrypt(bytes(tampered), "identities.address:ab")
    with pytest.raises(KeyringError):
        keyring.decrypt(bytes(sealed[:-1]), "identities.address:ab")
    with pytest.raises(KeyringError):
        keyring.decrypt(b"\x09" + bytes(sealed[1:]), "identities.address:ab")  # unknown format version


def test_wrong_associated_data_does_not_open() -> None:
    keyring = ring()
    sealed = keyring.encrypt("Amina", "profile_secrets.first_name:1")
    for other in ("profile_secrets.first_name:2", "profile_secrets.family_contact:1", ""):
        with pytest.raises(KeyringError):
            keyring.decrypt(sealed, other)


def test_unknown_key_id_does_not_open() -> None:
    old = ring("a")
    sealed = old.encrypt("Amina", "aad")
    with pytest.raises(KeyringError, match="not loaded"):
        ring("b").decrypt(sealed, "aad")
    # Same id, different key material: still refused, never garbage.
    impostor = KeyRing({"a": b"\x03" * 32}, "a", b"\x02" * 32)
    with pytest.raises(KeyringError):
        impostor.decrypt(sealed, "aad")
    with pytest.raises(KeyringError):
        KeyRing({"a": b"\x01" * 32}, "missing", b"\x02" * 32)


def test_master_keys_parse_refuses_bad_specs() -> None:
    good = base64.b64encode(b"\x00" * 32).decode()
    assert MasterKeys.parse(f"k1:{good}, k2:{good}").active == "k1"
    for spec in ("", "k1", f":{good}", "k1:not-base64!", "k1:" + base64.b64encode(b"short").decode()):
        with pytest.raises(KeyringError):
            MasterKeys.parse(spec)


def test_blind_index_is_equality_without_plaintext() -> None:
    keyring = ring()
    first = keyring.blind_index("phone", PHONE)
    assert first == keyring.blind_index("phone", PHONE)
    assert first != keyring.blind_index("phone", CONTACT)
    assert first != keyring.blind_index("telegram", PHONE)
    assert first != KeyRing({"a": b"\x01" * 32}, "a", b"\x04" * 32).blind_index("phone", PHONE)
    assert len(first) == 32
    assert PHONE.encode() not in first and PHONE[1:].encode() not in first


# --------------------------------------------------------------------------- the registry


async def test_store_inbound_dedupes_and_joins_channels(db: Database, master: MasterKeys) -> None:
    keyring = await keys.load_keyring(db, master)
    sms = inbound(PHONE, "JOIN", "sms", "SM" + "1" * 32)
    stored = await receive(db, keyring, sms)
    assert stored is not None
    assert await receive(db, keyring, sms) is None  # Twilio retried the webhook
    assert await count(db, "inbound") == 1

    whatsapp = await receive(db, keyring, inbound(PHONE, "1", "whatsapp", "SM" + "2" * 32))
    assert whatsapp is not None
    assert (whatsapp.registrant_id, whatsapp.identity_id) == (stored.registrant_id, stored.identity_id)
    # The same provider id from another provider is another message.
    telegram = await receive(db, keyring, inbound("123456789", "hi", "telegram", "SM" + "1" * 32), "telegram")
    assert telegram is not None and telegram.registrant_id != stored.registrant_id
    assert await count(db, "registrants") == 2
    assert await count(db, "identities") == 2

    async with db.read() as conn:
        identity = await store.find_identity(conn, keyring, "whatsapp", PHONE)
        rows = (await conn.execute(select(schema.inbound).order_by(schema.inbound.c.id))).all()
    assert identity is not None and identity.id == stored.identity_id and identity.last_channel == "whatsapp"
    assert identity.bidx == keyring.blind_index("phone", PHONE)
    assert keyring.decrypt(identity.address_ct, keys.identity_aad({"bidx": identity.bidx})) == PHONE
    assert PHONE.encode() not in identity.address_ct
    assert [r.registrant_id for r in rows] == [stored.registrant_id, stored.registrant_id, telegram.registrant_id]
    texts = [keyring.decrypt(r.body_ct, keys.inbound_aad(r._mapping)) for r in rows]
    assert texts == ["JOIN", "1", "hi"]


async def _registered(db: Database, keyring: KeyRing) -> tuple[int, State]:
    stored = await receive(db, keyring, inbound(PHONE))
    assert stored is not None
    async with db.write() as conn:
        before = await store.load_state(conn, keyring, stored.registrant_id)
        assert before is not None
        after = replace(before, step=Step.GENDER, consented=True, menu=("tripoli", "misrata"), profile=Profile(
            language="ar", area_id="tripoli", first_name="Amina", nationality="NG", gender="female",
            age_band="18-29", household_size=4, family_contact=CONTACT))
        now = datetime.now(UTC)
        await store.record_consent(conn, stored.registrant_id, "2026-11", "ar", "sms", now)
        await store.save_state(conn, keyring, stored.registrant_id, before, after, now)
    return stored.registrant_id, after


async def test_state_round_trip_keeps_secrets_sealed(db: Database, master: MasterKeys) -> None:
    keyring = await keys.load_keyring(db, master)
    registrant_id, saved = await _registered(db, keyring)
    async with db.read() as conn:
        loaded = await store.load_state(conn, keyring, registrant_id)
        secrets_ = (await conn.execute(select(schema.profile_secrets))).all()
        registrant = (await conn.execute(select(schema.registrants))).one()
    assert loaded is not None
    assert loaded.addresses == (("sms", PHONE),)
    assert loaded.consent_at is not None
    assert replace(loaded, consent_at=None, addresses=()) == replace(saved, consent_at=None, addresses=())
    assert {s.field for s in secrets_} == {"first_name", "family_contact"}
    for row in secrets_:
        assert b"Amina" not in row.value_ct and CONTACT[1:].encode() not in row.value_ct
        assert keyring.key_id_of(row.value_ct) == keyring.active
    assert registrant.confirmed_at is not None
    assert "Amina" not in str(registrant._mapping) and CONTACT[1:] not in str(registrant._mapping)

    # A sealed value copied to another registrant's row does not open there.
    other = await receive(db, keyring, inbound(CONTACT))
    assert other is not None
    async with db.write() as conn:
        name = next(s for s in secrets_ if s.field == "first_name")
        await conn.execute(schema.profile_secrets.insert().values(
            registrant_id=other.registrant_id, field="first_name", value_ct=name.value_ct))
    async with db.read() as conn:
        with pytest.raises(KeyringError):
            await store.load_state(conn, keyring, other.registrant_id)

    # Clearing a secret deletes its row.
    async with db.write() as conn:
        cleared = replace(saved, profile=replace(saved.profile, family_contact=None))
        await store.save_state(conn, keyring, registrant_id, saved, cleared, datetime.now(UTC))
    assert await count(db, "profile_secrets", schema.profile_secrets.c.registrant_id == registrant_id) == 1


async def _queue_reply(db: Database, keyring: KeyRing, registrant_id: int) -> None:
    from campaigns import outbox

    async with db.write() as conn:
        await outbox.enqueue(conn, keyring, [outbox.Draft(registrant_id, None, "sms", PHONE, "Hello Amina")])


async def test_forget_keeps_only_an_opt_out_marker(db: Database, master: MasterKeys) -> None:
    keyring = await keys.load_keyring(db, master)
    registrant_id, _ = await _registered(db, keyring)
    await _queue_reply(db, keyring, registrant_id)
    async with db.write() as conn:
        await store.forget(conn, registrant_id)
    async with db.read() as conn:
        registrant = (await conn.execute(select(schema.registrants))).one()
        identity = (await conn.execute(select(schema.identities))).one()
        state = await store.load_state(conn, keyring, registrant_id)
        bodies = (await conn.execute(select(schema.inbound.c.body_ct, schema.inbound.c.registrant_id))).all()
    assert registrant.opted_out and not registrant.consented and registrant.step == Step.NEW.value
    assert (registrant.area_id, registrant.nationality, registrant.gender, registrant.age_band,
            registrant.household_size, registrant.confirmed_at) == (None,) * 6
    assert identity.bidx == keyring.blind_index("phone", PHONE) and identity.address_ct == b""
    for table in ("profile_secrets", "consents", "outbox"):
        assert await count(db, table) == 0, table
    assert bodies and all(body is None and owner is None for body, owner in bodies)
    assert state is not None and state.addresses == () and state.opted_out
    assert state.profile.first_name is None and state.profile.family_contact is None

    # The marker is found again: the same person writing later is the same (opted-out) registrant.
    again = await receive(db, keyring, inbound(PHONE, "START"))
    assert again is not None and again.registrant_id == registrant_id
    assert await count(db, "registrants") == 1


async def test_erase_removes_the_registrant_and_their_messages(db: Database, master: MasterKeys) -> None:
    keyring = await keys.load_keyring(db, master)
    registrant_id, _ = await _registered(db, keyring)
    await _queue_reply(db, keyring, registrant_id)
    bystander = await receive(db, keyring, inbound(CONTACT, "JOIN"))
    assert bystander is not None
    async with db.write() as conn:
        await store.erase(conn, registrant_id)
    assert await count(db, "registrants", schema.registrants.c.id == registrant_id) == 0
    for table in ("identities", "profile_secrets", "consents", "outbox"):
        column = schema.metadata.tables[table].c.registrant_id
        assert await count(db, table, column == registrant_id) == 0, table
    async with db.read() as conn:
        rows = (await conn.execute(select(schema.inbound).order_by(schema.inbound.c.id))).all()
        found = await store.find_identity(conn, keyring, "sms", PHONE)
    mine, theirs = rows[:-1], rows[-1]
    assert mine and all(r.body_ct is None and r.registrant_id is None and r.identity_id is None for r in mine)
    assert found is None
    # The bystander is untouched.
    assert theirs.registrant_id == bystander.registrant_id
    assert keyring.decrypt(theirs.body_ct, keys.inbound_aad(theirs._mapping)) == "JOIN"
    # Dedupe still works for an erased message (the row stays, empty).
    assert await receive(db, keyring, inbound(PHONE, provider_id=mine[0].provider_id)) is None


# --------------------------------------------------------------------------- audit


async def _chain(db: Database, length: int = 5) -> None:
    for n in range(1, length + 1):
        async with db.write() as conn:
            await audit.append(conn, "system", "test.entry", str(n), {"n": n, "note": "é"})


async def _verify_after(db: Database, *statements: str) -> audit.Verdict:
    """Verify the chain with ``statements`` applied, inside a transaction that is rolled back."""
    async with db.engine.connect() as conn:
        transaction = await conn.begin()
        try:
            for statement in statements:
                await conn.execute(text(statement))
            return await audit.verify(conn)
        finally:
            await transaction.rollback()


async def test_audit_chain_detects_edits_deletions_and_reordering(db: Database) -> None:
    await _chain(db)
    async with db.read() as conn:
        verdict = await audit.verify(conn)
    assert verdict == audit.Verdict(True, 5)

    edited = await _verify_after(db, "UPDATE audit_log SET detail = '{}' WHERE seq = 3")
    assert (edited.ok, edited.broken_at) == (False, 3)
    actor = await _verify_after(db, "UPDATE audit_log SET actor = 'someone' WHERE seq = 2")
    assert (actor.ok, actor.broken_at) == (False, 2)

    deleted = await _verify_after(db, "DELETE FROM audit_log WHERE seq = 3")
    assert (deleted.ok, deleted.broken_at) == (False, 3) and "missing" in deleted.reason

    # Entries 2 and 3 swap places.
    swapped = await _verify_after(
        db,
        "UPDATE audit_log SET seq = -2 WHERE seq = 2",
        "UPDATE audit_log SET seq = 2 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = -2",
    )
    assert (swapped.ok, swapped.broken_at) == (False, 2)

    # An edit that recomputes its own hash without the chain's key breaks at the edited entry itself.
    async with db.read() as conn:
        row = (await conn.execute(select(schema.audit_log).where(schema.audit_log.c.seq == 3))).one()
    at = (row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)).isoformat()
    forged = audit._digest(3, at, row.actor, row.action, row.subject, '{}', row.prev_hash)
    relinked = await _verify_after(db, f"UPDATE audit_log SET detail = '{{}}', hash = '{forged}' WHERE seq = 3")
    assert (relinked.ok, relinked.broken_at) == (False, 3)

    async with db.read() as conn:
        assert (await audit.verify(conn)).ok  # every tampering above was rolled back


async def test_audit_appends_continue_the_chain(db: Database) -> None:
    await _chain(db, 3)
    async with db.write() as conn:
        seq = await audit.append(conn, "cli", "token.created", "x", {"role": "admin"})
    async with db.read() as conn:
        rows = (await conn.execute(select(schema.audit_log).order_by(schema.audit_log.c.seq))).all()
        verdict = await audit.verify(conn)
    assert seq == 4 and [r.seq for r in rows] == [1, 2, 3, 4]
    assert rows[0].prev_hash == audit.GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(rows, rows[1:], strict=False))
    assert verdict.ok and verdict.entries == 4


# --------------------------------------------------------------------------- tokens


async def test_tokens_create_authenticate_revoke(db: Database) -> None:
    token = await tokens.create(db, "responder", "alice")
    assert token.startswith("bcn_") and len(token) > 40
    assert await tokens.authenticate(db, token) == tokens.Caller("alice", "responder")
    assert await tokens.authenticate(db, token + "x") is None
    assert await tokens.authenticate(db, "") is None
    async with db.read() as conn:
        stored = (await conn.execute(select(schema.api_tokens))).one()
    assert token not in str(stored._mapping)  # only the hash is kept

    with pytest.raises(tokens.TokenError, match="already exists"):
        await tokens.create(db, "admin", "alice")
    with pytest.raises(tokens.TokenError):
        await tokens.create(db, "king", "bob")
    with pytest.raises(tokens.TokenError):
        await tokens.create(db, "admin", "")
    other = await tokens.create(db, "analyst", "bob")

    await tokens.revoke(db, "alice")
    assert await tokens.authenticate(db, token) is None
    assert await tokens.authenticate(db, other) == tokens.Caller("bob", "analyst")
    with pytest.raises(tokens.TokenError):
        await tokens.revoke(db, "alice")
    with pytest.raises(tokens.TokenError):
        await tokens.revoke(db, "nobody")
    async with db.read() as conn:
        actions = (await conn.execute(select(schema.audit_log.c.action).order_by(schema.audit_log.c.seq))).scalars()
        assert list(actions) == ["token.created", "token.created", "token.revoked"]
        assert (await audit.verify(conn)).ok


# --------------------------------------------------------------------------- keys


def test_every_sealed_column_is_reencrypted() -> None:
    """A new encrypted column (``*_ct``) must be listed in keys.SEALED, or rotation leaves it behind."""
    sealed = {(s.table, s.column) for s in keys.SEALED}
    for table in schema.metadata.tables.values():
        for column in table.c:
            if isinstance(column.type, LargeBinary) and column.name.endswith("_ct"):
                assert (table.name, column.name) in sealed, f"{table.name}.{column.name} is not in keys.SEALED"


async def sealed_values(db: Database) -> list[tuple[keys.Sealed, dict[str, object]]]:
    found = []
    async with db.read() as conn:
        for sealed in keys.SEALED:
            table = schema.metadata.tables[sealed.table]
            for row in (await conn.execute(select(table).where(table.c[sealed.column].is_not(None)))).all():
                if row._mapping[sealed.column]:
                    found.append((sealed, dict(row._mapping)))
    return found


@pytest.mark.slow
async def test_rotate_and_reencrypt_on_a_live_service(start_beacon: StartBeacon, database_url: str) -> None:
    running = await start_beacon(BEACON_DATABASE_URL=database_url)
    master = MasterKeys.parse(running.settings.keys or "")
    first_key = running.beacon.keys.ring.active
    stop = asyncio.Event()
    registered: list[str] = []

    async def register_people(writer: int) -> None:
        n = 0
        while not stop.is_set():
            phone = f"+23480{writer}{n:07d}"
            n += 1
            await running.converse(phone, "JOIN", "1", "YES", "tripoli", "Amina", "Nigeria", "1")
            await running.converse(phone, "2", "3", CONTACT, "MYDATA")
            registered.append(phone)
            await asyncio.sleep(0.02)  # busy, not flat out: leave the event loop to the rotation too

    writers = [asyncio.create_task(register_people(w)) for w in range(4)]
    try:
        async with asyncio.timeout(20):
            while len(registered) < 4:  # some people are registered under the first key
                await asyncio.sleep(0.05)
        # What `beacon keys rotate` and then `beacon keys reencrypt` do, from another "process".
        cli = Database(database_url)
        try:
            new_key = await keys.rotate(cli, master)
            holder = keys.KeyHolder(await keys.load_keyring(cli, master), master)
            assert holder.ring.active == new_key != first_key
            written = len(registered)  # people keep writing while the live service still seals under the old key
            await eventually(lambda: len(registered) > written, 20, "registrations after the rotation")
            resealed = await keys.reencrypt(cli, holder.ring, batch=100)
        finally:
            await cli.close()
        written = len(registered)
        await eventually(lambda: len(registered) > written, 20, "registrations after the re-encryption")
    finally:
        stop.set()
        results = await asyncio.gather(*writers, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    assert resealed > 0

    # The live service followed the rotation without a restart, and everything is sealed under the new key.
    assert running.beacon.keys.ring.active == new_key
    await running.beacon.service.wait_idle()
    fresh = await keys.load_keyring(running.beacon.db, master)
    values = await sealed_values(running.beacon.db)
    assert {s.table for s, _ in values} >= {"identities", "profile_secrets", "inbound", "outbox"}
    for sealed, row in values:
        blob = row[sealed.column]
        assert isinstance(blob, bytes)
        fresh.decrypt(blob, sealed.aad(row))
        assert fresh.key_id_of(blob) == new_key, f"{sealed.table}.{sealed.column} still under an old key"
    # And the service still reads what everyone wrote.
    mine = "\n".join(await running.simulate(registered[0], "MYDATA"))
    assert registered[0] in mine and "Amina" in mine and CONTACT in mine
    assert await count(running.beacon.db, "identities") >= len(set(registered))
    async with running.beacon.db.read() as conn:
        assert (await audit.verify(conn)).ok


async def test_a_process_that_missed_the_rotation_still_reads(start_beacon: StartBeacon, database_url: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process rotated and re-sealed before this one looked: it reloads its keys, the message is handled."""
    running = await start_beacon(BEACON_DATABASE_URL=database_url)
    await running.converse(PHONE, "JOIN", "1", "YES", "tripoli", "Amina")
    monkeypatch.setattr(keys, "CHECK_SECONDS", 3600.0)  # it will not look in time by itself
    master = MasterKeys.parse(running.settings.keys or "")
    cli = Database(database_url)
    try:
        new_key = await keys.rotate(cli, master)
        assert await keys.reencrypt(cli, await keys.load_keyring(cli, master), settle=0) > 0
    finally:
        await cli.close()
    assert running.beacon.keys.ring.active != new_key
    mine = "\n".join(await running.simulate(PHONE, "MYDATA"))
    assert "Amina" in mine and PHONE in mine
    assert running.beacon.keys.ring.active == new_key


async def test_reencrypt_leaves_values_written_under_the_new_key(db: Database, master: MasterKeys) -> None:
    keyring = await keys.load_keyring(db, master)
    registrant_id, _ = await _registered(db, keyring)
    await keys.rotate(db, master)
    keyring = await keys.load_keyring(db, master)
    await _queue_reply(db, keyring, registrant_id)  # sealed under the new key already
    before = await sealed_values(db)
    resealed = await keys.reencrypt(db, keyring, settle=0)
    assert resealed == sum(1 for s, row in before if keyring.key_id_of(row[s.column]) != keyring.active) > 0
    assert await keys.reencrypt(db, keyring, settle=0) == 0
    async with db.read() as conn:
        state = await store.load_state(conn, keyring, registrant_id)
    assert state is not None and state.profile.first_name == "Amina" and state.addresses == (("sms", PHONE),)


async def test_rotation_reaches_a_running_process(db: Database, master: MasterKeys,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    holder = keys.KeyHolder(await keys.load_keyring(db, master), master)
    new_key = await keys.rotate(db, master)
    monkeypatch.setattr(keys, "CHECK_SECONDS", 0.0)
    await holder.check(db)
    assert holder.ring.active == new_key


async def test_load_keyring_is_deterministic_when_keys_raced(db: Database, master: MasterKeys) -> None:
    """Two processes that both created "the first" keys, or two rotations at once: everyone picks the same."""
    first = await keys.load_keyring(db, master)
    async with db.write() as conn:
        await keys._create(conn, master, "index", active=True)
        await keys._create(conn, master, "data", active=True)
    again = [await keys.load_keyring(db, master) for _ in range(3)]
    assert len({r.active for r in again}) == 1
    assert {r.blind_index("phone", PHONE) for r in again} == {first.blind_index("phone", PHONE)}
    assert await keys.active_key_id(db) == again[0].active


async def test_wrong_master_keys_fail_loudly(database_url: str, tmp_path: Path, master: MasterKeys) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        keyring = await keys.load_keyring(db, master)
        assert await receive(db, keyring, inbound(PHONE)) is not None
        for wrong in (MasterKeys.parse(dev_keys()),  # same id "k1", other key
                      MasterKeys.parse("k9:" + base64.b64encode(secrets.token_bytes(32)).decode())):
            with pytest.raises(KeyringError):
                await keys.load_keyring(db, wrong)
            with pytest.raises(KeyringError):
                await keys.rotate(db, wrong)
        assert await count(db, "data_keys") == 2  # nothing was written with the wrong keys
    finally:
        await db.close()
    # The whole service refuses to start, rather than run without its data.
    env = environment(tmp_path, BEACON_DATABASE_URL=database_url, BEACON_KEYS=dev_keys())
    with pytest.raises(KeyringError):
        async with open_beacon(config.load(env)):
            pytest.fail("opened a database with the wrong keys")


async def test_a_ciphertext_from_another_database_does_not_open(db: Database, master: MasterKeys) -> None:
    keyring = await keys.load_keyring(db, master)
    stored = await receive(db, keyring, inbound(PHONE))
    assert stored is not None
    stranger = KeyRing({keyring.active: secrets.token_bytes(32)}, keyring.active, secrets.token_bytes(32))
    async with db.read() as conn:
        identity = (await conn.execute(select(schema.identities))).one()
        with pytest.raises(KeyringError):
            await store.load_state(conn, stranger, stored.registrant_id)
    with pytest.raises(KeyringError):
        stranger.decrypt(identity.address_ct, keys.identity_aad({"bidx": identity.bidx}))
    assert await store_lookup(db, stranger) is None


async def store_lookup(db: Database, keyring: KeyRing) -> object:
    async with db.read() as conn:
        return await store.find_identity(conn, keyring, "sms", PHONE)
