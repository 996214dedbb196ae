"""Production (JSON) logs: an exception comes with its traceback, and without what the person wrote."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from sqlalchemy import text

from beacon.logs import configure
from registry.crypto import KeyringError
from tests.conftest import StartBeacon

PHONE = "+2348012345670"
FREE_TEXT = "they took my papers at the Zawiya checkpoint"


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


def json_lines(captured: str) -> list[dict[str, Any]]:
    found = []
    for line in captured.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


async def test_a_failure_while_processing_is_logged_with_its_frames_and_no_personal_data(
        restore_logging: None, start_beacon: StartBeacon, capfd: pytest.CaptureFixture[str]) -> None:
    configure("json", "info")  # binds sys.stderr when called: here, while capfd holds it
    running = await start_beacon()
    await running.converse(PHONE, "JOIN", "1", "1", "tripoli", "0", "0", "0", "0", "0", "0")
    async with running.beacon.db.write() as conn:  # the database refuses to mark any message processed
        await conn.execute(text("CREATE TRIGGER refuse BEFORE UPDATE OF processed_at ON inbound "
                                "BEGIN SELECT RAISE(ABORT, 'storage refused'); END"))
    failed = await running.client.post("/simulator/messages", json={"from": PHONE, "text": FREE_TEXT})
    assert failed.status == 500
    assert await running.beacon.service.recover() == 0  # the sweep tries the stored message again, in vain
    out, err = capfd.readouterr()
    lines = (out + err).splitlines()
    failures = [entry for entry in json_lines(out + err) if entry.get("event") == "process.failed"]
    assert failures, "\n".join(lines[-20:])
    stacks = failures[0]["exception"]
    assert [stack["exc_type"] for stack in stacks] == ["IntegrityError", "IntegrityError"]  # SQLAlchemy's, the driver's
    frames = [(frame["filename"].rsplit("/", 2)[-2:], frame["name"]) for stack in stacks for frame in stack["frames"]]
    assert (["beacon", "service.py"], "_process") in frames
    assert all("locals" not in frame for stack in stacks for frame in stack["frames"])
    for line in lines:
        assert '"exc_info": true' not in line
        for secret in (PHONE, PHONE[1:], "0" + PHONE[4:], FREE_TEXT, "Zawiya"):
            assert secret not in line, f"{secret!r} in a log line: {line[:300]}"


def test_beacons_own_error_messages_stay_and_others_go(
        restore_logging: None, capfd: pytest.CaptureFixture[str]) -> None:
    configure("json", "info")
    try:
        try:
            int(FREE_TEXT)  # Python's message quotes the text
        except ValueError as exc:
            raise KeyringError("ciphertext does not authenticate") from exc
    except KeyringError:
        structlog.get_logger("test").exception("process.failed", inbound_id=7)
    _, err = capfd.readouterr()
    [entry] = [e for e in json_lines(err) if e.get("event") == "process.failed"]
    assert [(s["exc_type"], s["exc_value"]) for s in entry["exception"]] == [
        ("KeyringError", "ciphertext does not authenticate"), ("ValueError", "")]
    assert FREE_TEXT not in err
