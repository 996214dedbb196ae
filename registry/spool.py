"""A durable on-disk queue for verified inbound messages that the database could not take in time.

Twilio does not retry a webhook that failed, and a message refused is a person unheard. When the
database stalls (SQLite locked by another writer, PostgreSQL down) the web layer appends the
message here, answers the provider, and replays the spool in arrival order once the database is
back; storage still dedupes on the provider's message id, so a message both spooled and stored
(a commit that finished late) is kept once.

One file per message, written to a temporary name, fsynced, renamed into place and the directory
fsynced: a message whose webhook was answered survives a crash or a power cut. File names sort in
arrival order. Contents are sealed with the data key ring like every other personal value at rest.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from channels.base import Inbound
from domain.vocabulary import ChannelKind
from registry.crypto import KeyRing

AAD = "spool:inbound"
SUFFIX = ".msg"


class Spool:
    """Messages waiting for the database, oldest first."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._sequence = itertools.count()
        self.waiting = len(self.pending())  # kept in step by append/remove, so the hot path lists nothing

    def append(self, ring: KeyRing, provider: str, message: Inbound) -> Path:
        """Seal and durably write one message; returns its file. Blocking: call it in a thread."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        record = {"provider": provider, **asdict(message), "received_at": message.received_at.isoformat()}
        sealed = ring.encrypt(json.dumps(record, ensure_ascii=False), AAD)
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._sequence):09d}"
        temporary = self.directory / f".{name}.tmp"
        final = self.directory / f"{name}{SUFFIX}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, sealed)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, final)
        self._sync_directory()
        self.waiting += 1
        return final

    def pending(self) -> list[Path]:
        """The spooled messages in arrival order."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    @staticmethod
    def read(ring: KeyRing, path: Path) -> tuple[str, Inbound]:
        """The provider and message in one spool file."""
        record = json.loads(ring.decrypt(path.read_bytes(), AAD))
        provider = record.pop("provider")
        record["channel"] = ChannelKind(record["channel"])
        record["received_at"] = datetime.fromisoformat(record["received_at"])
        return provider, Inbound(**record)

    def remove(self, path: Path) -> None:
        """Forget a message once the database holds it."""
        try:
            path.unlink()
        except FileNotFoundError:  # another process replayed it first
            return
        self._sync_directory()
        self.waiting = max(0, self.waiting - 1)

    def set_aside(self, path: Path) -> None:
        """Move a file that cannot be read (another deployment's keys, damage) out of the queue, kept for a look."""
        path.rename(path.with_suffix(".unreadable"))
        self._sync_directory()
        self.waiting = max(0, self.waiting - 1)

    def _sync_directory(self) -> None:
        descriptor = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
