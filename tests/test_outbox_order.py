"""Several senders claiming from one PostgreSQL outbox keep each person's messages in order: a person's later
messages are not taken while an earlier one is held by another claim or still on its way."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from campaigns import outbox
from registry import schema
from registry.crypto import MasterKeys
from registry.db import Database
from registry.keys import KeyHolder, load_keyring
from tests.conftest import POSTGRES_URL, dev_keys, reset_postgres
from tests.seeding import phone, seed_registrants


async def test_a_persons_messages_are_taken_in_line_by_concurrent_claims() -> None:
    if not POSTGRES_URL:
        pytest.skip("BEACON_TEST_POSTGRES_URL is not set")
    await reset_postgres(POSTGRES_URL)
    db = Database(POSTGRES_URL)
    try:
        await db.migrate()
        master = MasterKeys.parse(dev_keys())
        holder = KeyHolder(await load_keyring(db, master), master)
        await seed_registrants(db, holder, 2)
        async with db.write() as conn:
            first, second, third, other = await outbox.enqueue_returning_ids(conn, holder.ring, [
                outbox.Draft(registrant_id=n, identity_id=n, channel="sms", address=phone(n), text=text)
                for n, text in ((1, "Welcome"), (1, "Your language?"), (1, "Your area?"), (2, "Welcome"))])

        def ids(rows: list[dict[str, object]]) -> list[object]:
            return [row["id"] for row in rows]

        o = schema.outbox.c
        # Another process is in the middle of claiming person 1's first message (its row is locked, not yet
        # marked): this claim must not take person 1's later ones past it.
        async with db.engine.connect() as other_process:
            await other_process.execute(select(o.id).where(o.id == first).with_for_update())
            assert ids(await outbox.claim(db, 10)) == [other]
            await other_process.rollback()
        assert ids(await outbox.claim(db, 1)) == [first]
        assert await outbox.claim(db, 10) == []  # the first is on its way: the others wait for it
        async with db.write() as conn:
            await conn.execute(update(schema.outbox).where(o.id == first).values(status="sent"))
        assert ids(await outbox.claim(db, 10)) == [second, third]  # together, in order, by one claim
    finally:
        await db.close()
