"""What a registration leaves behind: no phone number, name or message text in clear, on disk or in the logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from sqlalchemy import select

from beacon.logs import configure
from registry import schema
from tests.conftest import Running, StartBeacon
from tests.helpers import settle

PHONE = "+2348012345678"
NAME = "Zainabou"
NATIONALITY_TYPED = "Nigeria"
CONTACT = "+2348087654321"
FREE_TEXT = "the soldiers took my papers"  # something a person might type that is not a command


def forms(*values: str) -> list[str]:
    """Each value, and for phone numbers also their digits alone and the national form (0801...)."""
    found: list[str] = []
    for value in values:
        found.append(value.lower())
        if value.startswith("+"):
            found += [value[1:], "0" + value[4:]]
    return found


def needles(*values: str) -> list[tuple[str, bytes]]:
    """Every form as it could be stored: utf-8 and utf-16 either way round."""
    return [(f"{form!r} ({encoding})", form.encode(encoding))
            for form in forms(*values) for encoding in ("utf-8", "utf-16-le", "utf-16-be")]


def database_files(running: Running) -> dict[str, bytes]:
    path = Path(running.settings.database_url[len("sqlite:///"):])
    files = {p.name: p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file()}
    assert path.name in files
    return files


def assert_nowhere(files: dict[str, bytes], values: list[str]) -> None:
    for name, data in files.items():
        lowered = data.lower()  # ASCII case folding: catches "ZAINABOU" too
        for label, needle in needles(*values):
            assert needle not in lowered, f"{label} is readable in {name}"


async def register(running: Running) -> None:
    replies = await running.converse(PHONE, "JOIN", "1", "YES", "tripoli")
    assert "registered" in " ".join(replies)
    await running.converse(PHONE, NAME, NATIONALITY_TYPED, "1", "2", "3", CONTACT)
    await running.simulate(PHONE, FREE_TEXT)
    mine = "\n".join(await running.simulate(PHONE, "MYDATA"))
    assert NAME in mine and PHONE in mine and CONTACT in mine


@pytest.mark.slow
async def test_nothing_personal_in_the_database_files(start_beacon: StartBeacon) -> None:
    running = await start_beacon()
    await register(running)
    await running.beacon.sender.drain_once()  # the replies have left, as they would within a second
    files = database_files(running)
    assert any(name.endswith("-wal") and data for name, data in files.items()), "expected a write-ahead log"
    secrets_ = [PHONE, NAME, CONTACT, NATIONALITY_TYPED, FREE_TEXT]
    assert_nowhere(files, secrets_)

    replies = await running.converse(PHONE, "DELETE", "YES")
    assert replies
    await running.beacon.sender.drain_once()
    assert_nowhere(database_files(running), secrets_)
    async with running.beacon.db.read() as conn:
        from sqlalchemy import func, select

        from registry import schema

        for table in (schema.registrants, schema.identities, schema.profile_secrets, schema.consents):
            assert (await conn.execute(select(func.count()).select_from(table))).scalar_one() == 0, table.name
        bodies = (await conn.execute(select(schema.inbound.c.body_ct))).scalars().all()
        assert bodies and all(body is None for body in bodies)
        left = (await conn.execute(select(schema.outbox.c.address_ct, schema.outbox.c.body_ct))).all()
        assert all(address is None and body is None for address, body in left)

    # Closing checkpoints the log into the database file: still nothing.
    await running.client.close()
    assert_nowhere(database_files(running), secrets_)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put logging back as it was after a test that configured it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved = structlog.get_config()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**saved)


@pytest.mark.slow
async def test_no_phone_number_or_message_text_in_the_logs(
        restore_logging: None, start_beacon: StartBeacon, capfd: pytest.CaptureFixture[str]) -> None:
    # The service's own set-up (structlog JSON to stderr) at its most verbose. It binds sys.stderr when
    # called, so it is called here, while capfd holds stderr.
    configure("json", "debug")
    running = await start_beacon(BEACON_LOG_LEVEL="debug")
    await register(running)
    await running.converse(PHONE, "2", "medical")  # a need-help answer, whatever the bot makes of it
    await running.beacon.sender.drain_once()
    bad = await running.client.post("/simulator/messages", json={"from": PHONE + "9999999", "text": FREE_TEXT})
    assert bad.status == 400
    await running.converse(PHONE, "DELETE", "YES")
    await running.beacon.sender.drain_once()
    out, err = capfd.readouterr()
    lines = [line for line in (out + err).splitlines() if line.strip()]
    events = []
    for line in lines:
        try:
            events.append(json.loads(line).get("event"))
        except ValueError:
            continue
    # The capture works: the service did log this registration, as JSON.
    assert "audit.appended" in events, "\n".join(lines[:60])
    for line in lines:
        for form in forms(PHONE, NAME, CONTACT, NATIONALITY_TYPED, FREE_TEXT):
            assert form not in line.lower(), f"{form!r} in a log line: {line[:300]}"


async def test_refused_consent_keeps_nothing_but_a_marker(start_beacon: StartBeacon) -> None:
    running = await start_beacon()
    await running.converse(PHONE, "JOIN", "1")
    assert await running.simulate(PHONE, "NO")
    await settle(running)  # the "nothing kept" reply has left
    async with running.beacon.db.read() as conn:
        identity = (await conn.execute(select(schema.identities))).one()
        registrant = (await conn.execute(select(schema.registrants))).one()
        bodies = (await conn.execute(select(schema.inbound.c.body_ct))).scalars().all()
        outbox = (await conn.execute(select(schema.outbox.c.address_ct, schema.outbox.c.body_ct,
                                            schema.outbox.c.status))).all()
    assert identity.address_ct == b"" and registrant.opted_out and not registrant.consented
    assert bodies and all(body is None for body in bodies)
    # No ciphertext of the number or of what was said to them is kept once the messages have left.
    assert outbox and all(address is None and body is None for address, body, status in outbox), outbox
    assert_nowhere(database_files(running), [PHONE])
