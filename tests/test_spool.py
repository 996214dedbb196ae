"""The inbound spool on its own: sealed at rest, durable across a restart, replayed in arrival order."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from channels.base import Inbound
from domain.vocabulary import ChannelKind
from registry.crypto import KeyRing, KeyringError, new_key
from registry.spool import Spool

PHONE = "+2348012345678"


def ring() -> KeyRing:
    return KeyRing({"k1": new_key()}, "k1", new_key())


def message(n: int, text: str = "JOIN") -> Inbound:
    return Inbound(channel=ChannelKind.WHATSAPP, address=PHONE, text=text, provider_id=f"SM{n:032d}",
                   received_at=datetime(2026, 12, 4, 12, 0, n, tzinfo=UTC), language_hint="ar", opt_out=None)


def test_messages_come_back_whole_and_in_arrival_order(tmp_path: Path) -> None:
    keys, spool = ring(), Spool(tmp_path / "spool")
    sent = [message(n, f"مرحبا {n}") for n in range(30)]
    for m in sent:
        spool.append(keys, "twilio", m)
    assert spool.waiting == 30
    back = [Spool.read(keys, path) for path in spool.pending()]
    assert back == [("twilio", m) for m in sent]


def test_nothing_readable_at_rest(tmp_path: Path) -> None:
    keys, spool = ring(), Spool(tmp_path / "spool")
    path = spool.append(keys, "twilio", message(1, "I am at the bus station"))
    raw = path.read_bytes()
    assert PHONE.encode() not in raw and b"bus station" not in raw
    assert path.stat().st_mode & 0o077 == 0
    with pytest.raises(KeyringError):
        Spool.read(ring(), path)  # another deployment's keys open nothing


def test_a_new_process_finds_what_the_last_one_spooled(tmp_path: Path) -> None:
    keys = ring()
    first = Spool(tmp_path / "spool")
    for n in range(3):
        first.append(keys, "telegram", message(n))
    (tmp_path / "spool" / ".half-written.tmp").write_bytes(b"cut off by a crash")
    again = Spool(tmp_path / "spool")
    assert again.waiting == 3
    oldest = again.pending()[0]
    again.remove(oldest)
    assert again.waiting == 2 and oldest not in again.pending()
    again.remove(oldest)  # removing twice (another process replayed it) is harmless
    assert again.waiting == 2


def test_an_empty_spool_has_nothing_pending(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "never-made")
    assert spool.pending() == [] and spool.waiting == 0
