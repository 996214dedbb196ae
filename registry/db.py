"""Database engine, dialect quirks and migrations."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, Result
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"
# How long a write waits for another process (e.g. `beacon keys reencrypt`) to finish its write.
BUSY_SECONDS = 10.0


def async_url(url: str) -> str:
    """Map the contract's URLs to SQLAlchemy's async drivers."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    return url


class Database:
    """One engine, and a writer lock that serialises write transactions on SQLite.

    On SQLite, write transactions run on a plain synchronous connection in the event loop's thread
    (see :class:`InlineConnection`); reads stay on aiosqlite's threads.
    """

    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        self.sqlite = self.url.startswith("sqlite")
        self._writes: Engine | None = None
        self.path: Path | None = None  # the SQLite file
        if self.sqlite:
            path = self.path = Path(self.url.split(":///", 1)[1])
            path.parent.mkdir(parents=True, exist_ok=True)
            self.engine: AsyncEngine = create_async_engine(self.url, pool_size=4, max_overflow=4)
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            self._writes = create_engine(f"sqlite:///{path}", pool_size=1, max_overflow=1,
                                         connect_args={"check_same_thread": False})
            event.listen(self._writes, "connect", _sqlite_writer_pragmas)
        else:
            self.engine = create_async_engine(self.url, pool_size=10, max_overflow=10, pool_pre_ping=True)
        self._writer = asyncio.Lock()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction; on SQLite, one at a time in this process (one writer is all it has)."""
        if self._writes is not None:
            async with self._writer:
                with self._writes.connect() as sync:
                    await _begin_immediate(sync)
                    try:
                        yield cast(AsyncConnection, InlineConnection(sync))
                    except BaseException:
                        sync.rollback()
                        raise
                    sync.commit()
        else:
            async with self.engine.begin() as conn:
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection."""
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        """Raise when the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def migrate(self) -> None:
        """Bring the schema up to date (Alembic, under a lock where the database has one)."""
        async with self.engine.begin() as conn:
            if not self.sqlite:
                await conn.execute(text("SELECT pg_advisory_xact_lock(7466353)"))
            await conn.run_sync(_upgrade)

    async def close(self) -> None:
        if self._writes is not None:
            self._writes.dispose()
        await self.engine.dispose()


class InlineConnection:
    """The part of AsyncConnection the registry uses, over a synchronous SQLite connection.

    aiosqlite runs every statement in its own thread: a statement is about four hand-offs to that
    thread and back (cursor, execute, fetch, close), each far slower than the statement itself,
    and a write transaction holds the writer lock across all of them, so they cap the whole
    service's throughput. Here a statement is a direct call instead. It blocks the event loop
    only for the statement itself (microseconds on these small rows): waiting for another
    process's write lock happens before, asynchronously, in :func:`_begin_immediate`.
    """

    __slots__ = ("_sync",)

    def __init__(self, sync: Connection) -> None:
        self._sync = sync

    @property
    def dialect(self) -> Any:
        return self._sync.dialect

    @property
    def sync_connection(self) -> Connection:
        return self._sync

    async def execute(self, statement: Any, parameters: Any = None, **kw: Any) -> Any:
        return self._sync.execute(statement, parameters, **kw)

    async def exec_driver_sql(self, statement: str, parameters: Any = None, **kw: Any) -> Any:
        return self._sync.exec_driver_sql(statement, parameters, **kw)

    async def scalar(self, statement: Any, parameters: Any = None, **kw: Any) -> Any:
        return self._sync.scalar(statement, parameters, **kw)

    async def scalars(self, statement: Any, parameters: Any = None, **kw: Any) -> Any:
        return self._sync.scalars(statement, parameters, **kw)

    async def stream(self, statement: Any, parameters: Any = None, **kw: Any) -> _Rows:
        return _Rows(self._sync.execute(statement, parameters, **kw))

    async def run_sync(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return fn(self._sync, *args, **kw)


class _Rows:
    """A buffered result that can be iterated with ``async for`` (what ``stream`` gives)."""

    def __init__(self, result: Result[Any]) -> None:
        self._rows: Iterator[Any] = iter(result.all())

    def __aiter__(self) -> _Rows:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._rows)
        except StopIteration:
            raise StopAsyncIteration from None


async def _begin_immediate(sync: Connection) -> None:
    """Take SQLite's write lock now, waiting (without blocking the loop) while another process holds it.

    With the lock taken at BEGIN, the transaction's reads and writes see one state of the database:
    a read-then-write (the audit chain's last entry, a claim) cannot interleave with another process.
    """
    delay = 0.001
    deadline = asyncio.get_running_loop().time() + BUSY_SECONDS
    while True:
        try:
            sync.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as exc:
            sync.rollback()
            busy = getattr(exc.orig, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # Erased rows are overwritten with zeros, not left in free pages.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _sqlite_writer_pragmas(dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
    _sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    # In WAL mode a transaction that holds the write lock (BEGIN IMMEDIATE) never waits for readers, so no
    # statement needs to wait: never stall the event loop inside one. Without WAL (a file system that
    # refuses it) a commit waits for readers, so keep waiting there, as before.
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        cursor.execute("PRAGMA busy_timeout=0")
    cursor.close()
