"""SQLite serves one Beacon process: a second `beacon serve` or `beacon worker` on the same file is refused.

SQLite has one writer, and the sender's leases, the rate limits and the scheduler's claims of one process
assume no other process sends from the same file. The first process holds an exclusive ``flock`` on a
lock file beside the database for its lifetime; the kernel releases it when the process ends, however it
ends, so a crash (even kill -9) leaves no stale lock behind. One-off commands (`beacon token`, `beacon keys
reencrypt`, ...) take no lock: they write a little and leave.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class DatabaseInUse(Exception):
    """Another process already serves this SQLite database."""


def lock_path(database: Path) -> Path:
    """The lock file of a SQLite database: ``beacon.db`` -> ``beacon.db.lock``."""
    return database.with_name(database.name + ".lock")


@contextlib.contextmanager
def sole_process(database: Path) -> Iterator[None]:
    """Hold the database's lock while the block runs; DatabaseInUse when another process holds it."""
    path = lock_path(database)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            raise DatabaseInUse(
                f"another Beacon process{f' (pid {holder})' if holder.isdigit() else ''} already serves "
                f"{database}; SQLite takes one `beacon serve` or `beacon worker` - run several on PostgreSQL"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
