"""The key ring's life cycle: load, rotate, re-encrypt; all on a live database."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, select, text, tuple_, update
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


# How often a running process looks whether another one rotated the data key (see KeyHolder.check).
CHECK_SECONDS = 1.0


def _order() -> tuple[ColumnElement[Any], ...]:
    return (schema.data_keys.c.created_at, schema.data_keys.c.id)


async def load_keyring(db: Database, master: MasterKeys) -> KeyRing:
    """Unwrap the data keys (creating the first ones on a new database).

    Every process must pick the same keys, even if two of them raced to create the first ones
    or two rotations ran at once: the index key is the oldest, the active data key the newest active.
    """
    async with db.write() as conn:
        if not db.sqlite:
            # Two processes starting on an empty database must not both create an index key.
            await conn.execute(text("SELECT pg_advisory_xact_lock(7466355)"))
        rows = (await conn.execute(select(schema.data_keys).order_by(*_order()))).all()
        if not rows:
            await _create(conn, master, "data", active=True)
            await _create(conn, master, "index", active=True)
            rows = (await conn.execute(select(schema.data_keys).order_by(*_order()))).all()
    data: dict[str, bytes] = {}
    active = index = None
    for row in rows:
        key = master.unwrap(row.master_key_id, row.wrapped, row.id)
        if row.purpose == "index":
            index = index or key
        else:
            data[row.id] = key
            if row.active:
                active = row.id
    if active is None or index is None:
        raise KeyringError("the database has no active data key or no index key")
    return KeyRing(data, active, index)


async def active_key_id(db: Database) -> str | None:
    """The id of the data key new values are sealed under (the same choice as load_keyring's)."""
    k = schema.data_keys.c
    async with db.read() as conn:
        return (await conn.execute(select(k.id).where(k.purpose == "data", k.active.is_(True))
                                   .order_by(k.created_at.desc(), k.id.desc()).limit(1))).scalar()


async def rotate(db: Database, master: MasterKeys) -> str:
    """Make a new data key active; running processes pick it up on their next key refresh."""
    async with db.write() as conn:
        # Master keys that do not open the existing keys must not add an active key nobody else can open.
        for row in (await conn.execute(select(schema.data_keys))).all():
            master.unwrap(row.master_key_id, row.wrapped, row.id)
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


def case_aad(field: str) -> Callable[[dict[str, object]], str]:
    """The associated data of a case's sealed ``details`` or ``notes`` (as campaigns.cases forms it)."""
    def aad(row: dict[str, object]) -> str:
        return f"cases.{field}:{row['id']}"

    return aad


def webhook_secret_aad(row: dict[str, object]) -> str:
    """A webhook subscription's signing secret, bound to the subscription."""
    return f"webhooks.secret:{row['id']}"


def webhook_payload_aad(row: dict[str, object]) -> str:
    """A queued webhook notification's body, bound to its event id."""
    return f"webhook_deliveries.payload:{row['event_id']}"


SEALED = (
    Sealed("identities", "address_ct", ("id",), identity_aad, ("bidx",)),
    Sealed("profile_secrets", "value_ct", ("registrant_id", "field"), secret_aad),
    Sealed("inbound", "body_ct", ("id",), inbound_aad, ("provider", "provider_id")),
    Sealed("outbox", "address_ct", ("id",), outbox_aad("address"), ("ref",)),
    Sealed("outbox", "body_ct", ("id",), outbox_aad("body"), ("ref",)),
    Sealed("cases", "details_ct", ("id",), case_aad("details")),
    Sealed("cases", "notes_ct", ("id",), case_aad("notes")),
    Sealed("webhooks", "secret_ct", ("id",), webhook_secret_aad),
    Sealed("webhook_deliveries", "payload_ct", ("id",), webhook_payload_aad, ("event_id",)),
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


# Between two write batches on SQLite, re-encryption leaves the database to the other processes for
# longer than a waiting writer's longest poll (registry.db._begin_immediate looks every 50 ms at most),
# so a live service's writes always get in between and never wait for more than about one batch.
SQLITE_PAUSE = 0.06


def _reseal_statement(sealed: Sealed):  # type: ignore[no-untyped-def]
    """UPDATE <column> of one row, only if it still holds the value read (a concurrent write wins).

    Built once per pass with bound parameters, so a batch is one statement executed for many rows.
    """
    table = schema.metadata.tables[sealed.table]
    column = table.c[sealed.column]
    where = [table.c[k] == bindparam(f"_key_{k}") for k in sealed.key]
    return (update(table).where(*where, column == bindparam("_old", type_=column.type))
            .values({sealed.column: bindparam("_new", type_=column.type)}))


async def _reencrypt_pass(db: Database, keyring: KeyRing, batch: int, pause: float) -> tuple[int, int]:
    """One scan of every sealed column; re-seals what is not under the active key.

    Rows are read in primary-key order ``batch`` at a time; the values are decrypted and sealed
    again outside any transaction, then written in one short write transaction per batch (one
    statement executed for every row). Returns (re-sealed, stale seen): a value skipped because a
    writer held or changed it is left for the next pass.
    """
    total = seen = 0
    for sealed in SEALED:
        table = schema.metadata.tables[sealed.table]
        column = table.c[sealed.column]
        key_columns = [table.c[k] for k in sealed.key]
        columns = [table.c[name] for name in (*sealed.key, *sealed.extra, sealed.column)]
        statement = _reseal_statement(sealed)
        # Up to the last row that exists now: rows added meanwhile are sealed under the new key already
        # (or are caught by the next pass), and a busy table must not keep one pass from ending.
        async with db.read() as conn:
            end = (await conn.execute(select(*key_columns).order_by(*(c.desc() for c in key_columns)).limit(1))).first()
        if end is None:
            continue
        last: tuple[object, ...] | None = None
        while True:
            query = (select(*columns).where(column.is_not(None), tuple_(*key_columns) <= tuple_(*end))
                     .order_by(*key_columns).limit(batch))
            if last is not None:
                query = query.where(tuple_(*key_columns) > tuple_(*last))
            async with db.read() as conn:
                rows = [dict(r._mapping) for r in (await conn.execute(query)).all()]
            if not rows:
                break
            last = tuple(rows[-1][k] for k in sealed.key)
            stale = [r for r in rows if r[sealed.column] and keyring.key_id_of(r[sealed.column]) != keyring.active]
            seen += len(stale)
            if not stale:
                continue
            changes = []
            for row in stale:  # the cryptography, before the write lock is taken
                aad = sealed.aad(row)
                changes.append({**{f"_key_{k}": row[k] for k in sealed.key}, "_old": row[sealed.column],
                                "_new": keyring.encrypt(keyring.decrypt(row[sealed.column], aad), aad)})
            async with db.write() as conn:
                if not db.sqlite:
                    # Never wait for a row a live transaction holds (that could deadlock with it): skip it,
                    # the next pass comes back for it.
                    locked = select(*key_columns).where(
                        tuple_(*key_columns).in_([tuple(r[k] for k in sealed.key) for r in stale])
                    ).with_for_update(skip_locked=True)
                    mine = {tuple(r) for r in (await conn.execute(locked)).all()}
                    changes = [c for c in changes if tuple(c[f"_key_{k}"] for k in sealed.key) in mine]
                if not changes:
                    continue
                if conn.dialect.supports_sane_multi_rowcount:
                    total += (await conn.execute(statement, changes)).rowcount
                else:  # the driver cannot count an executemany's rows: one execution each (still one statement)
                    for change in changes:
                        total += (await conn.execute(statement, change)).rowcount
            if db.sqlite and pause > 0:
                await asyncio.sleep(pause)
    return total, seen


async def reencrypt(db: Database, keyring: KeyRing, batch: int = 2000, settle: float = 2 * CHECK_SECONDS,
                    max_passes: int = 10, pause: float = SQLITE_PAUSE) -> int:
    """Re-seal every value not under the active key, in short transactions, while others keep writing.

    Running processes switch to a new key within ``CHECK_SECONDS`` of its rotation (KeyHolder.check),
    so once the key is ``settle`` seconds old nobody seals new values under an old one; passes
    repeat until one finds nothing left, which also catches the writes that were in flight.
    Returns how many values were re-sealed.
    """
    total = 0
    settled = False
    for _ in range(max_passes):
        resealed, seen = await _reencrypt_pass(db, keyring, batch, pause)
        total += resealed
        if seen == 0 and settled:
            break
        if not settled:
            settled = await _wait_until_settled(db, keyring.active, settle)
        elif resealed < seen:
            await asyncio.sleep(0.1)  # rows held by writers: give them a moment
    return total


async def _wait_until_settled(db: Database, key_id: str, settle: float) -> bool:
    """Sleep until ``key_id`` has been active for ``settle`` seconds; True once it has."""
    k = schema.data_keys.c
    async with db.read() as conn:
        created = (await conn.execute(select(k.created_at).where(k.id == key_id))).scalar()
    if created is None:
        return True
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    age = (datetime.now(UTC) - created).total_seconds()
    if age < settle:
        await asyncio.sleep(settle - age)
    return True


class KeyHolder:
    """The current key ring of a running process, refreshed so rotations reach it without a restart."""

    def __init__(self, ring: KeyRing, master: MasterKeys) -> None:
        self.ring = ring
        self.master = master
        self._checked = time.monotonic()

    async def refresh(self, db: Database) -> None:
        """Reload the data keys from the database."""
        self.ring = await load_keyring(db, self.master)
        self._checked = time.monotonic()

    async def check(self, db: Database) -> None:
        """At most every CHECK_SECONDS, a one-row look at the active key id; reload the keys if it changed.

        Called before writing, so that a rotation done by another process (``beacon keys rotate``)
        is followed within about a second, not at the next periodic refresh.
        """
        if time.monotonic() - self._checked < CHECK_SECONDS:
            return
        self._checked = time.monotonic()
        active = await active_key_id(db)
        if active is not None and active != self.ring.active:
            await self.refresh(db)
