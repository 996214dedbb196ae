"""Benchmark: /api/v1/stats by area x nationality x gender over 1,000,000 registrants.

Run from the project root:

    .venv/bin/python bench/stats.py                      # SQLite (a file under /tmp)
    BEACON_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/stats.py

With ``BEACON_TEST_POSTGRES_URL`` set it also runs on PostgreSQL, in a database of its own
(``beacon_bench`` on that server, created when missing) so that it never touches the test database.
Options: ``--rows N`` (default 1,000,000), ``--min-cell N`` (default 10), ``--runs N`` (default 5),
``--keep`` (reuse the SQLite file / PostgreSQL table when it already holds ``--rows`` registrants),
``--sqlite-path PATH``. The schema's covering index ``ix_registrants_breakdown`` on
``registrants (area_id, nationality, gender, consented)`` (migration 0003) serves this breakdown.

The synthetic population: 75 areas (25 top-level, each with 2 children; stats at level 0), 40
nationalities with a Zipf-like skew, gender female/male/other/not given (45/45/2/8 %), 3 % without
consent and 1 % without an area (not counted). It is bulk-inserted with ``executemany`` on raw
sqlite3 and ``COPY`` on PostgreSQL after migrating the schema with ``Database.migrate``; one inbound
message row stands for the messaging that would have filled it (it dates the data: ``data_as_of``).

For each database it prints the API function (``registry.publication.build``: the counting query and
the suppression, as the endpoint runs them) beside a raw ``GROUP BY`` in the same database; the target
is under 500 ms each. The API function is timed for the first request, which counts and protects,
and again with the counts unchanged, when the protected table is reused and only the count runs
(what a dashboard or a report schedule sees between registrations).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select, text  # noqa: E402

from domain.areas import Gazetteer  # noqa: E402
from registry import schema  # noqa: E402
from registry.aggregates import StatsQuery, count  # noqa: E402
from registry.db import Database  # noqa: E402
from registry.publication import ProtectedTables, build  # noqa: E402

NATIONALITIES = ("NG", "GH", "SD", "NE", "ML", "TD", "ER", "ET", "SO", "EG", "SY", "BD", "PK", "SN", "CI", "GM",
                 "GN", "CM", "BF", "MA", "DZ", "TN", "YE", "AF", "IQ", "PS", "SL", "LR", "BJ", "TG", "CD", "CF",
                 "SS", "KE", "UG", "TZ", "RW", "BI", "MR", "GW")
GENDERS = (("female", 45), ("male", 45), ("other", 2), (None, 8))
AGE_BANDS = ("0-17", "18-29", "30-44", "45-59", "60+", None)
LANGUAGES = ("en", "fr", "ar")
RAW = ("SELECT area_id, nationality, gender, count(*) FROM registrants "
       "WHERE consented AND area_id IS NOT NULL GROUP BY area_id, nationality, gender")


def gazetteer_file(directory: Path) -> tuple[Path, list[str]]:
    """25 top-level areas with two children each, with coordinates and P-codes."""
    rng = random.Random(1)
    areas = []
    for top in range(25):
        lat, lon = 25 + rng.random() * 8, 10 + rng.random() * 15
        areas.append({"id": f"a{top:02d}", "names": {"en": f"Area {top}"}, "parent": None,
                      "pcode": f"LY{top:02d}", "lat": round(lat, 4), "lon": round(lon, 4)})
        for child in range(2):
            areas.append({"id": f"a{top:02d}-{child}", "names": {"en": f"Area {top}.{child}"},
                          "parent": f"a{top:02d}", "pcode": f"LY{top:02d}{child:02d}",
                          "lat": round(lat + rng.random() / 5, 4), "lon": round(lon + rng.random() / 5, 4)})
    path = directory / "bench-areas.json"
    path.write_text(json.dumps(areas), encoding="utf-8")
    return path, [a["id"] for a in areas]


def people(count: int, area_ids: list[str]) -> Iterator[tuple[object, ...]]:
    """(language, area_id, nationality, gender, age_band, consented, opted_out, created_at, last_seen_at)."""
    rng = random.Random(7)
    area_weights = [rng.lognormvariate(0, 1) for _ in area_ids]
    nationality_weights = [1 / (k + 1) ** 1.3 for k in range(len(NATIONALITIES))]
    genders = [g for g, _ in GENDERS]
    gender_weights = [w for _, w in GENDERS]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    batch = 10_000
    for first in range(0, count, batch):
        size = min(batch, count - first)
        areas = rng.choices(area_ids, area_weights, k=size)
        nationalities = rng.choices(NATIONALITIES, nationality_weights, k=size)
        chosen_genders = rng.choices(genders, gender_weights, k=size)
        for k in range(size):
            seen = start + timedelta(seconds=rng.randrange(0, 300 * 86400))
            area = areas[k] if rng.random() > 0.01 else None
            yield (rng.choice(LANGUAGES), area, nationalities[k], chosen_genders[k], rng.choice(AGE_BANDS),
                   rng.random() > 0.03, rng.random() < 0.05, seen - timedelta(days=30), seen)


COLUMNS = ("language", "area_id", "nationality", "gender", "age_band", "consented", "opted_out", "created_at",
           "last_seen_at", "step", "context", "share_family")


async def fill_sqlite(path: Path, rows: int, area_ids: list[str], keep: bool) -> None:
    url = f"sqlite:///{path}"
    if keep and path.exists():
        with sqlite3.connect(path) as conn:
            if conn.execute("SELECT count(*) FROM registrants").fetchone()[0] == rows:
                return
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = Database(url)
    await db.migrate()
    await db.close()
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    placeholders = ",".join("?" * len(COLUMNS))
    conn.executemany(
        f"INSERT INTO registrants ({','.join(COLUMNS)}) VALUES ({placeholders})",
        ((lang, area, nat, gender, age, int(ok), int(out), created.strftime("%Y-%m-%d %H:%M:%S.%f"),
          seen.strftime("%Y-%m-%d %H:%M:%S.%f"), "idle", "{}", 0)
         for lang, area, nat, gender, age, ok, out, created, seen in people(rows, area_ids)))
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    print(f"  inserted {rows:,} registrants into SQLite in {time.perf_counter() - started:.1f} s")


def bench_database_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/beacon_bench"))


async def fill_postgres(url: str, rows: int, area_ids: list[str], keep: bool) -> str:
    import asyncpg

    admin = await asyncpg.connect(url)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = 'beacon_bench'"):
            await admin.execute("CREATE DATABASE beacon_bench")
    finally:
        await admin.close()
    bench_url = bench_database_url(url)
    conn = await asyncpg.connect(bench_url)
    try:
        if keep and await conn.fetchval("SELECT to_regclass('registrants') IS NOT NULL") and \
                await conn.fetchval("SELECT count(*) FROM registrants") == rows:
            return bench_url
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()
    db = Database(bench_url)
    await db.migrate()
    await db.close()
    started = time.perf_counter()
    conn = await asyncpg.connect(bench_url)
    try:
        records = ((lang, area, nat, gender, age, ok, out, created, seen, "idle", "{}", False)
                   for lang, area, nat, gender, age, ok, out, created, seen in people(rows, area_ids))
        await conn.copy_records_to_table("registrants", records=records, columns=list(COLUMNS))
        await conn.execute("VACUUM ANALYZE registrants")
    finally:
        await conn.close()
    print(f"  copied {rows:,} registrants into PostgreSQL in {time.perf_counter() - started:.1f} s")
    return bench_url


async def timed(runs: int, step: Callable[[], Awaitable[object]]) -> list[float]:
    await step()  # warm the caches and the connection pool
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await step()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def latest_message(db: Database) -> None:
    """A registry filled by messaging has inbound rows; the newest one dates the data (data_as_of)."""
    i, r = schema.inbound.c, schema.registrants.c
    async with db.write() as conn:
        if (await conn.execute(select(i.id).limit(1))).first() is None:
            latest = (await conn.execute(select(func.max(r.last_seen_at)))).scalar()
            await conn.execute(schema.inbound.insert().values(
                provider="simulator", provider_id="bench-latest", channel="simulator", body_ct=None, meta={},
                received_at=latest, processed_at=latest))


async def measure(name: str, url: str, gazetteer: Gazetteer, min_cell: int, runs: int) -> None:
    db = Database(url)
    query = StatsQuery(("area", "nationality", "gender"), level=0)
    tables = ProtectedTables()
    try:
        await latest_message(db)
        started = time.perf_counter()
        published = await build(db, gazetteer, tables, query, min_cell)  # counts, then protects (nothing cached yet)
        cold = [(time.perf_counter() - started) * 1000]

        async def api() -> object:
            return await build(db, gazetteer, tables, query, min_cell)

        async def counting() -> object:
            return await count(db, gazetteer, query)

        async def raw() -> object:
            async with db.read() as conn:
                return (await conn.execute(text(RAW))).all()

        api_times = await timed(runs, api)
        count_times = await timed(runs, counting)
        raw_times = await timed(runs, raw)
    finally:
        await db.close()
    table = published.table
    hidden_totals = sum(1 for t in table.totals if t.suppressed)
    print(f"  {len(table.cells):,} cells, {table.suppressed_cells:,} suppressed; {len(table.totals):,} totals, "
          f"{hidden_totals:,} suppressed; grand total {table.total.count:,}")
    for label, times, judged in (("API function, first request", cold, True),
                                 ("API function, same counts again", api_times, True),
                                 ("  of which the counting query", count_times, False),
                                 ("raw GROUP BY", raw_times, True)):
        verdict = "" if not judged else "ok" if statistics.median(times) < 500 else "OVER 500 ms"
        print(f"  {name:10s} {label:34s} median {statistics.median(times):7.1f} ms   "
              f"min {min(times):7.1f} ms   ({len(times)} runs) {verdict}")
    ratio = cold[0] / statistics.median(raw_times)
    print(f"  {name:10s} first request / raw GROUP BY = {ratio:.2f}x (target <= 2x, and under 500 ms) -> "
          f"{'met' if ratio <= 2 and cold[0] < 500 else 'NOT met'}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--min-cell", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--sqlite-path", type=Path, default=Path(tempfile.gettempdir()) / "beacon-bench-stats.db")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="beacon-bench-"))
    areas_path, area_ids = gazetteer_file(workdir)
    gazetteer = Gazetteer.load(areas_path)
    print(f"stats by area x nationality x gender, {args.rows:,} registrants, min_cell {args.min_cell}")
    print("SQLite:")
    await fill_sqlite(args.sqlite_path, args.rows, area_ids, args.keep)
    await measure("SQLite", f"sqlite:///{args.sqlite_path}", gazetteer, args.min_cell, args.runs)
    postgres = os.environ.get("BEACON_TEST_POSTGRES_URL")
    if postgres:
        print("PostgreSQL:")
        url = await fill_postgres(postgres, args.rows, area_ids, args.keep)
        await measure("PostgreSQL", url, gazetteer, args.min_cell, args.runs)
    else:
        print("PostgreSQL: skipped (set BEACON_TEST_POSTGRES_URL to include it)")


if __name__ == "__main__":
    asyncio.run(main())
