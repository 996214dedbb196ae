"""How fast a list imports: 100,000 rows of a CSV into a fresh SQLite registry, invitations queued.

Run it from the project directory:

    .venv/bin/python bench/import_rows.py                  # 100,000 rows
    .venv/bin/python bench/import_rows.py --rows 20000     # a quicker look
    .venv/bin/python bench/import_rows.py --database postgresql://postgres@127.0.0.1:5432/bench

It prints the seconds for

(a) a raw parse of the same CSV with the standard library's ``csv`` module (the baseline);
(b) the dry run (``campaigns.imports.check``: numbers, languages, areas, duplicates, registry look-up);
(c) the real import (``campaigns.imports.run``: registrants, sealed identities, one sealed invitation each in
    the outbox, the imported rows, the audit entries);

and the ratios (b)/(a) and (c)/(a). The target is (c) under 60 s for 100,000 rows. This is a benchmark,
not a test: numbers depend on the machine, so nothing asserts them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import io
import logging
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.state import BotConfig  # noqa: E402
from campaigns import imports  # noqa: E402
from campaigns.import_file import read_table  # noqa: E402
from domain.areas import Gazetteer  # noqa: E402
from registry import audit  # noqa: E402
from registry.crypto import MasterKeys  # noqa: E402
from registry.db import Database  # noqa: E402
from registry.keys import load_keyring  # noqa: E402

LANGUAGES = ("ar", "French", "English", "العربية", "fa")
AREAS = ("Tripoli", "benghazi", "LY0106", "Misrata", "")
MAPPING = {"phone": "Phone", "language": "Language", "area": "Region", "first_name": "Name"}


def make_csv(rows: int) -> bytes:
    """A list like a consulate's: national and international numbers, names in half the rows, a few bad rows."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("Phone", "Language", "Region", "Name"))
    for i in range(rows):
        number = f"+21891{1000000 + i}" if i % 2 else f"091{1000000 + i}"
        if i % 997 == 5:
            number = "n/a"
        writer.writerow((number, LANGUAGES[i % len(LANGUAGES)], AREAS[i % len(AREAS)], f"Name{i}" if i % 2 else ""))
    return out.getvalue().encode()


async def main(rows: int, database: str | None) -> None:
    content = make_csv(rows)
    started = time.perf_counter()
    parsed = sum(1 for _ in csv.reader(io.StringIO(content.decode())))
    baseline = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(database or f"sqlite:///{Path(tmp) / 'bench.db'}")
        await db.migrate()
        master = MasterKeys.parse("bench:" + base64.b64encode(secrets.token_bytes(32)).decode())
        audit.use(master)
        keys = await load_keyring(db, master)
        bot = BotConfig(gazetteer=Gazetteer.load(), operator="Consulate of X in Tripoli")
        started = time.perf_counter()
        report = await imports.check(db, keys, bot, read_table(content), MAPPING, "LY")
        dry = time.perf_counter() - started
        started = time.perf_counter()
        _, done = await imports.run(db, keys, bot, read_table(content), MAPPING, region="LY",
                                    legal_basis="consent", by="bench")
        real = time.perf_counter() - started
        await db.close()
    print(f"rows: {rows} ({parsed - 1} parsed), to import: {report.counts()['ok']}, imported: {done.imported}")
    print(f"(a) csv parse alone:  {baseline:8.2f} s")
    print(f"(b) dry run:          {dry:8.2f} s  ratio (b)/(a) {dry / baseline:7.1f}")
    print(f"(c) import:           {real:8.2f} s  ratio (c)/(a) {real / baseline:7.1f}  "
          f"({rows / real:,.0f} rows/s; target: 100,000 rows < 60 s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database", help="a PostgreSQL URL (migrated and written to); default: temporary SQLite")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    asyncio.run(main(args.rows, args.database))
