"""The ``beacon`` command."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import json
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn

import phonenumbers
from aiohttp import web

from beacon import config, drain, metrics, wakeups
from beacon.app import create_app, follow_keys, upkeep_jobs
from beacon.context import master_keys, open_beacon
from beacon.errors import describe
from beacon.http import record_id
from beacon.logs import configure
from bot.countries import normalise_phone
from bot.i18n import LANGUAGES, gettext_for
from bot.state import BotConfig
from campaigns import imports, reports, upkeep
from campaigns.import_file import FIELDS, ImportFileError, column_indexes, parse_mapping, read_table
from channels import telegram as tg
from domain.areas import Gazetteer
from domain.vocabulary import LegalBasis, Role
from registry import audit, dead_letter, subject, tokens, users
from registry import keys as keyring
from registry.db import Database
from registry.keys import KeyHolder, load_keyring
from registry.publication import ProtectedTables
from registry.times import aware
from registry.users import UserError


def _fail(message: str) -> int:
    print(f"beacon: error: {message}", file=sys.stderr)
    return 2


def serve(settings: config.Settings, args: argparse.Namespace) -> int:
    """Run the web server (and, unless --no-worker, the sender) until interrupted."""
    host = args.host or settings.host
    if settings.simulator and not config.loopback(host):
        return _fail(f"BEACON_SIMULATOR=on needs a loopback address, not --host {host}")
    if not settings.web_bot and not args.no_worker:
        return _fail("BEACON_WEB_BOT=off needs `beacon serve --no-worker`: the bot then runs in `beacon worker` "
                     "processes only")
    app = create_app(settings, worker=not args.no_worker)

    async def freeze(_app: web.Application) -> None:
        # Everything allocated at start-up lives as long as the process: keep it out of the
        # collector's full passes, which otherwise stall webhooks for a fifth of a second.
        gc.freeze()

    app.on_startup.append(freeze)
    metrics.serve_beside(app, settings)
    web.run_app(app, host=host, port=args.port or settings.port, print=None,
                access_log=None, shutdown_timeout=5)
    return 0


def worker(settings: config.Settings, args: argparse.Namespace) -> int:
    """Run the sender and the scheduler (and, with BEACON_WEB_BOT=off, the bot) without the web server."""
    async def run() -> None:
        async with open_beacon(settings) as beacon, metrics.listener(settings):
            # SIGTERM (the process manager's stop) ends the loops cleanly, as it does for `serve`.
            def stop() -> None:
                beacon.stop.set()
                beacon.sender.wake()
                beacon.runner.wake()
                beacon.webhooks.wake()

            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop)
            if settings.web_bot:
                await beacon.service.recover()
            beacon.runner.start_schedule(upkeep_jobs(beacon))
            loops = [beacon.sender.run(beacon.stop), beacon.runner.run(beacon.stop), beacon.webhooks.run(beacon.stop),
                     follow_keys(beacon)]
            # With BEACON_WEB_BOT=off the web processes only store: run the bot on what they announce.
            drainer = None if settings.web_bot else drain.Drainer(beacon.service, beacon.db)
            if drainer is not None:
                loops += [drainer.run(beacon.stop), drain.sweep(beacon.service, beacon.stop, drain.SWEEP_SECONDS)]
            if not beacon.db.sqlite:  # web processes announce the work they queue
                loops.append(wakeups.listen(settings.database_url, beacon.sender, beacon.runner, beacon.stop,
                                            inbound=drainer.wake if drainer is not None else None))
            try:
                await asyncio.gather(*loops)
            finally:
                beacon.runner.stop_schedule()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


def _database(settings: config.Settings, action: Callable[[Database, config.Settings], Awaitable[int]]) -> int:
    """Run ``action(db, settings)`` on a migrated database."""
    async def run() -> int:
        db = Database(settings.database_url)
        try:
            await db.migrate()
            audit.use(master_keys(settings))  # every command keys its audit entries as serve and worker do
            return await action(db, settings)
        finally:
            await db.close()

    return asyncio.run(run())


async def _keyholder(db: Database, settings: config.Settings) -> KeyHolder:

    master = master_keys(settings)
    return KeyHolder(await load_keyring(db, master), master)


def migrate(settings: config.Settings, args: argparse.Namespace) -> int:
    """Bring the schema up to date."""
    async def done(db: Database, settings: config.Settings) -> int:
        print("database is up to date")
        return 0

    return _database(settings, done)


def token(settings: config.Settings, args: argparse.Namespace) -> int:
    """Create or revoke an API token."""
    async def run(db: Database, settings: config.Settings) -> int:
        if args.token_command == "create":
            secret = await tokens.create(db, args.role, args.name, args.arrangement)
            bound = f", arrangement {args.arrangement}" if args.arrangement is not None else ""
            print(f"token for {args.name} ({args.role}{bound}); it is shown only once:")
            print(secret)
        else:
            await tokens.revoke(db, args.name)
            print(f"token {args.name} revoked")
        return 0

    return _database(settings, run)


def _new_password(username: str) -> str:
    """A password from standard input (one line), or asked for twice at a terminal."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")

    first = getpass.getpass(f"password for {username}: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ")
    return first


def user(settings: config.Settings, args: argparse.Namespace) -> int:
    """Console accounts: create, set a password, disable."""
    async def run(db: Database, settings: config.Settings) -> int:
        if args.user_command == "create":
            await users.create_user(db, args.name, args.role, _new_password(args.name))
            print(f"user {args.name} ({args.role}) created; sign in at {settings.public_url}/console")
        elif args.user_command == "password":
            await users.set_password(db, args.name, _new_password(args.name))
            print(f"password of {args.name} changed; their sessions are ended")
        else:
            await users.disable_user(db, args.name)
            print(f"user {args.name} disabled; their sessions are ended")
        return 0

    return _database(settings, run)


def keys(settings: config.Settings, args: argparse.Namespace) -> int:
    """Rotate the data key, or re-encrypt everything under the active one."""
    async def run(db: Database, settings: config.Settings) -> int:
        holder = await _keyholder(db, settings)
        if args.keys_command == "rotate":
            key_id = await keyring.rotate(db, holder.master)
            async with db.write() as conn:
                await audit.append(conn, "cli", "keys.rotated", key_id)
            print(f"data key {key_id} is now active; run `beacon keys reencrypt` to re-seal older data")
            return 0
        rewrapped = await keyring.rewrap(db, holder.master)
        await holder.refresh(db)
        count = await keyring.reencrypt(db, holder.ring)
        async with db.write() as conn:
            await audit.append(conn, "cli", "keys.reencrypted", holder.ring.active,
                               {"values": count, "rewrapped_keys": rewrapped})
        print(f"re-encrypted {count} values under {holder.ring.active}; re-wrapped {rewrapped} data keys")
        return 0

    return _database(settings, run)


def audit_cmd(settings: config.Settings, args: argparse.Namespace) -> int:
    """Check the audit log's chain (against a checkpoint if given), or append and print a checkpoint."""
    if args.audit_command == "verify" and (args.expect_seq is None) != (args.expect_hash is None):
        return _fail("--expect-seq and --expect-hash go together")

    async def run(db: Database, settings: config.Settings) -> int:
        if args.audit_command == "checkpoint":
            async with db.write() as conn:
                head = await audit.checkpoint(conn, "cli")
            print(head)
            return 0
        expect = audit.Checkpoint(args.expect_seq, args.expect_hash) if args.expect_seq is not None else None
        async with db.read() as conn:
            verdict = await audit.verify(conn, expect)
        if verdict.ok:
            print(f"audit log intact: {verdict.entries} entries"
                  + (f"; entry {expect.seq} matches the checkpoint" if expect else ""))
            return 0
        print(f"audit log broken at entry {verdict.broken_at}: {verdict.reason}")
        return 1

    return _database(settings, run)


def _seq(value: str) -> int:
    """A checkpoint's seq: a positive whole number."""
    if not (value.isascii() and value.isdecimal()) or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not an entry number (1 or more)")
    return int(value)


def _record(value: str) -> int:
    """A record id, as `beacon inbound failed` lists it."""
    found = record_id(value)
    if found is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a record id")
    return found


def _hash(value: str) -> str:
    """A checkpoint's hash: 64 hex digits."""
    if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise argparse.ArgumentTypeError("the hash must be 64 hex digits, as `beacon audit checkpoint` prints it")
    return value.lower()


def telegram(settings: config.Settings, args: argparse.Namespace) -> int:
    """Register or remove the Telegram webhook."""
    if settings.telegram is None:
        return _fail("set TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET first")

    async def run() -> int:
        assert settings.telegram is not None
        if args.telegram_command == "set-webhook":
            info = await tg.set_webhook(settings.telegram, settings.public_url)
            await tg.set_commands(settings.telegram, LANGUAGES, gettext_for)
            print(f"webhook set to {info.url}")
            print(f"updates: {', '.join(info.allowed_updates or ())}; pending: {info.pending_update_count}")
            if info.url != tg.webhook_url(settings.public_url):
                return _fail(f"Telegram reports the webhook as {info.url!r}")
            if info.last_error_message:  # Telegram's own words about our endpoint, e.g. a certificate problem
                print(f"last delivery error reported by Telegram: {info.last_error_message}")
            print("command menu set for: default, " + ", ".join(LANGUAGES))
        else:
            await tg.delete_webhook(settings.telegram)
            print("webhook deleted")
        return 0

    return asyncio.run(run())


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error (subcommands inherit this class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def retention_cmd(settings: config.Settings, args: argparse.Namespace) -> int:
    """Apply the retention policy now."""
    async def run(db: Database, settings: config.Settings) -> int:
        holder = await _keyholder(db, settings)
        report = await upkeep.run_retention(db, holder, settings.retention_policy(), settings.default_language)
        print(" ".join(f"{key}={value}" for key, value in report.counts().items()))
        return 0

    return _database(settings, run)


def reports_cmd(settings: config.Settings, args: argparse.Namespace) -> int:
    """Produce the runs of due report schedules now (the scheduler also checks every minute)."""
    async def run(db: Database, settings: config.Settings) -> int:
        produced = await reports.run_due(db, Gazetteer.load(settings.areas_file), ProtectedTables(), settings.min_cell)
        print(f"produced {len(produced)} report run(s)" + (f": {', '.join(map(str, produced))}" if produced else ""))
        return 0

    return _database(settings, run)


def export_subject(settings: config.Settings, args: argparse.Namespace) -> int:
    """Print everything held about one person as JSON (an access request made outside the bot); audited."""
    phone = normalise_phone(args.phone, None) if args.phone else None
    if args.phone and phone is None:
        return _fail("--phone must be a valid number with country code, e.g. +2348012345678")

    async def run(db: Database, settings: config.Settings) -> int:
        holder = await _keyholder(db, settings)
        kind, address = ("phone", phone) if phone else ("telegram", str(args.telegram))
        async with db.write() as conn:
            registrant_id = await subject.registrant_for(conn, holder.ring, kind, address)
            found = await subject.export(conn, holder.ring, registrant_id) if registrant_id else {}
            await audit.append(conn, args.actor, "subject.exported", str(registrant_id) if registrant_id else None,
                               {"found": bool(found)})
        if not found:
            return _fail("no one is registered with that address")
        print(json.dumps(found, ensure_ascii=False, indent=2))
        return 0

    return _database(settings, run)


def inbound_cmd(settings: config.Settings, args: argparse.Namespace) -> int:
    """List the inbound messages set aside after failing too often (ids, never text), or put one back."""
    async def run(db: Database, settings: config.Settings) -> int:
        if args.inbound_command == "failed":
            async with db.read() as conn:
                rows = await dead_letter.listing(conn)
            if not rows:
                print("no messages set aside")
                return 0
            print(f"{'id':>8}  {'received':<25}  {'channel':<10}  {'attempts':>8}  error")
            for row in rows:
                received = aware(row.received_at).isoformat(timespec="seconds")
                print(f"{row.id:>8}  {received:<25}  {row.channel:<10}  {row.attempts:>8}  {row.error or '-'}")
            return 0
        async with db.write() as conn:
            if not await dead_letter.put_back(conn, args.id):
                return _fail(f"inbound message {args.id} is not set aside")
            await audit.append(conn, "cli", "inbound.retried", str(args.id))
        print(f"inbound message {args.id} is due again: the next sweep processes it")
        return 0

    return _database(settings, run)


def import_cmd(settings: config.Settings, args: argparse.Namespace) -> int:
    """Import a CSV or XLSX list: a report of every problem, and (unless --dry-run) invitations queued."""
    try:
        content = Path(args.file).read_bytes()
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror}")
    region = args.region.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return _fail(f"--region must be a two-letter country code, e.g. LY, not {args.region!r}")
    try:
        table = read_table(content)
        mapping = parse_mapping(args.map)
        column_indexes(table.header, mapping)
    except ImportFileError as exc:
        return _fail(str(exc))

    async def run(db: Database, settings: config.Settings) -> int:
        holder = await _keyholder(db, settings)
        bot = BotConfig(gazetteer=Gazetteer.load(settings.areas_file), operator=settings.operator_name,
                        retention_months=settings.retention_months, default_language=settings.default_language)
        if args.dry_run:
            report = await imports.check(db, holder.ring, bot, table, mapping, region)
            print("dry run: nothing was stored")
        else:
            base = settings.invitation_link_base
            links = imports.Links(base, settings.invitation_days) if base else None
            import_id, report = await imports.run(db, holder.ring, bot, table, mapping, region=region,
                                                  legal_basis=args.legal_basis, by=args.actor, links=links)
            print(f"import {import_id} (legal basis: {report.legal_basis}): {report.imported} invitation(s) queued")
        print("\n".join(report.lines()))
        return 0

    return _database(settings, run)


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = _Parser(prog="beacon", description="Crisis messaging for migrants.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="web server, sender and scheduler in one process")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--no-worker", action="store_true",
                   help="do not run the sender and scheduler here (use `beacon worker`); with BEACON_WEB_BOT=off "
                   "(PostgreSQL) this process only verifies and stores webhooks, and the workers run the bot")
    s.set_defaults(run=serve)
    sub.add_parser("worker", help="the sender and scheduler without the web server; with BEACON_WEB_BOT=off "
                   "also the bot on what web processes store").set_defaults(run=worker)
    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(run=migrate)
    t = sub.add_parser("token", help="API tokens")
    tsub = t.add_subparsers(dest="token_command", required=True)
    create = tsub.add_parser("create", help="print a new token once")
    create.add_argument("--role", required=True, choices=tuple(Role))
    create.add_argument("--name", required=True)
    create.add_argument("--arrangement", type=_record, help="the sharing arrangement a partner token is bound to")
    tsub.add_parser("revoke", help="revoke a token").add_argument("name")
    t.set_defaults(run=token)
    u = sub.add_parser("user", help="console accounts (password read from stdin, or asked for)")
    usub = u.add_subparsers(dest="user_command", required=True)
    ucreate = usub.add_parser("create", help="add a user who signs in to /console")
    ucreate.add_argument("--role", required=True, choices=tokens.STAFF_ROLES)
    ucreate.add_argument("--name", required=True)
    usub.add_parser("password", help="set a new password").add_argument("name")
    usub.add_parser("disable", help="stop a user from signing in").add_argument("name")
    u.set_defaults(run=user)
    k = sub.add_parser("keys", help="data keys")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    ksub.add_parser("rotate", help="make a new data key active")
    ksub.add_parser("reencrypt", help="re-seal all data under the active key")
    k.set_defaults(run=keys)
    a = sub.add_parser("audit", help="audit log")
    asub = a.add_subparsers(dest="audit_command", required=True)
    verify = asub.add_parser("verify", help="check the hash chain (and that it still reaches a checkpoint)")
    verify.add_argument("--expect-seq", type=_seq, help="the seq of a checkpoint kept outside Beacon")
    verify.add_argument("--expect-hash", type=_hash, help="the hash of that checkpoint")
    asub.add_parser("checkpoint", help="append a checkpoint entry and print its seq and hash, to keep elsewhere")
    a.set_defaults(run=audit_cmd)
    r = sub.add_parser("retention", help="data retention")
    rsub = r.add_subparsers(dest="retention_command", required=True)
    rsub.add_parser("run", help="apply the retention policy now")
    r.set_defaults(run=retention_cmd)
    rp = sub.add_parser("reports", help="scheduled stats exports")
    rpsub = rp.add_subparsers(dest="reports_command", required=True)
    rpsub.add_parser("run-due", help="produce the runs of due schedules now")
    rp.set_defaults(run=reports_cmd)
    ib = sub.add_parser("inbound", help="inbound messages set aside after failing too often")
    ibsub = ib.add_subparsers(dest="inbound_command", required=True)
    ibsub.add_parser("failed", help="list them: id, received, channel, attempts, error class")
    ibsub.add_parser("retry", help="put one back for processing (audited)").add_argument("id", type=_record)
    ib.set_defaults(run=inbound_cmd)
    x = sub.add_parser("export-subject", help="everything held about one person, as JSON (admin)")
    who = x.add_mutually_exclusive_group(required=True)
    who.add_argument("--phone", help="phone number with country code")
    who.add_argument("--telegram", type=int, help="Telegram chat id")
    x.add_argument("--actor", default="admin-cli", help="who asks, for the audit log")
    x.set_defaults(run=export_subject)
    im = sub.add_parser("import", help="invite the people of a CSV or XLSX list (admin)")
    im.add_argument("file", help="a .csv (UTF-8) or .xlsx file with a header row")
    im.add_argument("--map", required=True, help="FIELD=COLUMN pairs, e.g. phone=Phone,language=Lang,area=Region "
                    f"(fields: {', '.join(FIELDS)})")
    im.add_argument("--region", required=True, help="where numbers without a country code are from, e.g. LY")
    im.add_argument("--dry-run", action="store_true", help="report what would happen, store nothing")
    im.add_argument("--legal-basis", choices=tuple(LegalBasis), default=LegalBasis.CONSENT,
                    help="consent (default): invited, nothing else until YES; vital_interests: crisis "
                    "messages too (see docs/data-protection.md)")
    im.add_argument("--actor", default="admin-cli", help="who imports, for the audit log")
    im.set_defaults(run=import_cmd)
    tg = sub.add_parser("telegram", help="Telegram webhook")
    tgsub = tg.add_subparsers(dest="telegram_command", required=True)
    tgsub.add_parser("set-webhook", help="register the webhook and the command menu")
    tgsub.add_parser("delete-webhook", help="remove the webhook")
    tg.set_defaults(run=telegram)
    return p


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    args = parser().parse_args(argv)
    try:
        settings = config.load()
        configure(settings.log_format, settings.log_level)
        code = args.run(settings, args)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # noqa: BLE001 - every failure ends in one line, never a traceback

        code = _fail(describe(exc))
    sys.exit(code)
