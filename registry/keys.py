"""The key ring's life cycle: load, rotate, re-encrypt; all on a live database."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from registry import schema
from registry.crypto import KeyRing, KeyringError, MasterKeys, new_key
from registry.db import Database


async def _create(conn: AsyncConnection, master: MasterKeys, purpose: str, active: bool) -> str:
    key_id = f"{purpose[0]}{secrets.token_hex(4)}"
    master_id, wrapped = master.wrap(new_key(), key_id)
    await conn.execute(schema.data_keys.insert().values(
        id=key_id, purpose=purpose, master_key_id=master_id, wrapped=wrapped, active=active,
        created_at=datetime.now(UTC)))
    return key_id


async def load_keyring(db: Database, master: MasterKeys) -> KeyRing:
    """Unwrap the data keys (creating the first ones on a new database)."""
    async with db.write() as conn:
        rows = (await conn.execute(select(schema.data_keys))).all()
        if not rows:
            await _create(conn, master, "data", active=True)
            await _create(conn, master, "index", active=True)
            rows = (await conn.execute(select(schema.data_keys))).all()
    data: dict[str, bytes] = {}
    active = index = None
    for row in rows:
        key = master.unwrap(row.master_key_id, row.wrapped, row.id)
        if row.purpose == "index":
            index = key
        else:
            data[row.id] = key
            if row.active:
                active = row.id
    if active is None or index is None:
        raise KeyringError("the database has no active data key or no index key")
    return KeyRing(data, active, index)


async def rotate(db: Database, master: MasterKeys) -> str:
    """Make a new data key active; running processes pick it up on their next key refresh."""
    async with db.write() as conn:
        await conn.execute(update(schema.data_keys).where(schema.data_keys.c.purpose == "data").values(active=False))
        return await _create(conn, master, "data", active=True)


@dataclass(frozen=True)
class Sealed:
    """One encrypted column and how its associated data is formed from its row."""

    table: str
    column: str
    key: tuple[str, ...]  # primary key columns
    aad: Callable[[dict[str, object]], str]
    extra: tuple[str, ...] = ()  # other columns the aad needs


def identity_aad(row: dict[str, object]) -> str:
    bidx = row["bidx"]
    assert isinstance(bidx, bytes)
    return f"identities.address:{bidx.hex()}"


def secret_aad(row: dict[str, object]) -> str:
    return f"profile_secrets.{row['field']}:{row['registrant_id']}"


def inbound_aad(row: dict[str, object]) -> str:
    return f"inbound.body:{row['provider']}:{row['provider_id']}"


def outbox_aad(column: str) -> Callable[[dict[str, object]], str]:
    def aad(row: dict[str, object]) -> str:
        return f"outbox.{column}:{row['ref']}"

    return aad


SEALED = (
    Sealed("identities", "address_ct", ("id",), identity_aad, ("bidx",)),
    Sealed("profile_secrets", "value_ct", ("registrant_id", "field"), secret_aad),
    Sealed("inbound", "body_ct", ("id",), inbound_aad, ("provider", "provider_id")),
    Sealed("outbox", "address_ct", ("id",), outbox_aad("address"), ("ref",)),
    Sealed("outbox", "body_ct", ("id",), outbox_aad("body"), ("ref",)),
)


async def rewrap(db: Database, master: MasterKeys) -> int:
    """Wrap every data key under the active master key; returns how many changed."""
    changed = 0
    async with db.write() as conn:
        for row in (await conn.execute(select(schema.data_keys))).all():
            if row.master_key_id == master.active:
                continue
            key = master.unwrap(row.master_key_id, row.wrapped, row.id)
            master_id, wrapped = master.wrap(key, row.id)
            await conn.execute(update(schema.data_keys).where(schema.data_keys.c.id == row.id)
                               .values(master_key_id=master_id, wrapped=wrapped))
            changed += 1
    return changed


async def reencrypt(db: Database, keyring: KeyRing, batch: int = 500) -> int:
    """Re-seal every value not under the active key, in short transactions; returns the count."""
    total = 0
    for sealed in SEALED:
        table = schema.metadata.tables[sealed.table]
        column = table.c[sealed.column]
        columns = [table.c[name] for name in (*sealed.key, *sealed.extra, sealed.column)]
        last: tuple[object, ...] | None = None
        while True:
            query = select(*columns).where(column.is_not(None)).order_by(*(table.c[k] for k in sealed.key)).limit(batch)
            if last is not None:
                query = query.where(tuple_(*(table.c[k] for k in sealed.key)) > tuple_(*last))
            async with db.read() as conn:
                rows = [dict(r._mapping) for r in (await conn.execute(query)).all()]
            if not rows:
                break
            last = tuple(rows[-1][k] for k in sealed.key)
            stale = [r for r in rows if r[sealed.column] and keyring.key_id_of(r[sealed.column]) != keyring.active]
            if not stale:
                continue
            async with db.write() as conn:
                for row in stale:
                    aad = sealed.aad(row)
                    fresh = keyring.encrypt(keyring.decrypt(row[sealed.column], aad), aad)
                    where = [table.c[k] == row[k] for k in sealed.key] + [column == row[sealed.column]]
                    result = await conn.execute(update(table).where(*where).values({sealed.column: fresh}))
                    total += result.rowcount
    return total





class KeyHolder:
    """The current key ring of a running process, refreshed so rotations reach it without a restart."""

    def __init__(self, ring: KeyRing, master: MasterKeys) -> None:
        self.ring = ring
        self.master = master

    async def refresh(self, db: Database) -> None:
        """Reload the data keys from the database."""
        self.ring = await load_keyring(db, self.master)
