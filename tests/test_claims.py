"""Claiming a batch of stored messages (beacon/claims.py): each person's waiting messages in arrival order,
earlier ones first, each claimed once; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from beacon import claims
from domain.vocabulary import ProviderName
from registry import store
from registry.db import Database
from registry.keys import KeyHolder, MasterKeys, load_keyring
from tests.conftest import dev_keys
from tests.helpers import inbound

A, B = "+2348010000101", "+2348010000102"


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await db.migrate()
    yield db
    await db.close()


async def stored(db: Database, *messages: tuple[str, str]) -> list[int]:
    """Store ``(address, text)`` messages one transaction each, in order: their inbound ids."""
    master = MasterKeys.parse(dev_keys())
    keys = KeyHolder(await load_keyring(db, master), master)
    ids = []
    for address, text in messages:
        async with db.write() as conn:
            [row] = await store.store_inbound(conn, keys.ring, [(ProviderName.SIMULATOR, inbound(address, text))])
        assert row is not None
        ids.append(row.inbound_id)
    return ids


async def test_a_batch_steps_each_persons_earlier_messages_first_and_claims_once(database: Database) -> None:
    a1, b1, a2, a3, b2 = await stored(database, (A, "JOIN"), (B, "JOIN"), (A, "1"), (A, "YES"), (B, "1"))
    async with database.write() as conn:
        rows = await claims.claim(conn, [a2, b1], datetime.now(UTC))
    # a1 goes before a2; a3 (later, not asked for) and b2 stay waiting.
    assert [r.id for r in rows] == [a1, a2, b1]
    assert rows[0].previous_at is None and rows[1].previous_at is not None
    async with database.write() as conn:
        again = await claims.claim(conn, [a1, a2, a3, b2], datetime.now(UTC))
    assert [r.id for r in again] == [a3, b2]  # what was claimed before is left out
    async with database.write() as conn:
        assert await claims.claim(conn, [a3, b2, b1], datetime.now(UTC)) == []
