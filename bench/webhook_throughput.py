"""Signed Twilio inbound webhooks per second under wrk, against a bare aiohttp handler, same run.

How to run, from the repository root (a minute or two)::

    .venv/bin/python bench/webhook_throughput.py
    .venv/bin/python bench/webhook_throughput.py --seconds 8 --connections 32 --rounds 5
    .venv/bin/python bench/webhook_throughput.py --profile /tmp/webhook.svg   # py-spy flame graph of beacon

The load generator is wrk (installed when missing: ``apt-get install wrk``, else built from its
source), in its own process; each server runs in a process of its own too:

* **bare** - an aiohttp app whose handler parses the form and answers the empty TwiML, nothing else;
* **beacon** - ``beacon serve`` itself (SQLite file, sender and bot running, replies going to a
  local Twilio double in this process): each webhook is validated with the SDK's
  ``RequestValidator``, stored and deduplicated (webhooks arriving together share one commit) and
  answered; the bot runs after.

Every request is a distinct person's JOIN (a new ``From`` and ``MessageSid`` each, signed in
advance the way Twilio signs), so each stores a new registrant and identity. Rounds alternate
bare, beacon, bare, ... with the same wrk settings; printed per round: requests per second, p50
and p99 latency, and how long the bot then took to answer everyone. At the end: the medians and
the ratio beacon/bare, target >= 50%.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

PATH = "/webhooks/twilio/messages"
PUBLIC_URL = "https://beacon.example.org"  # what Twilio signs; the Host header plays no part
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 32
SMS_FROM = "+15005550006"
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
WRK_SOURCE = "https://github.com/wg/wrk.git"

# Each wrk thread loads the requests whose line number falls to it and sends them in turn (wrapping
# round, counted, when the run outlasts them); done() prints one JSON line.
LUA = r"""
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end
function init(args)
  local total = tonumber(args[2])
  requests = {}
  local n = 0
  for line in io.lines(args[1]) do
    if n % total == id then
      local signature, body = line:match("^(%S+)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", "PATH", {
        ["Content-Type"] = "application/x-www-form-urlencoded", ["X-Twilio-Signature"] = signature,
        ["User-Agent"] = "TwilioProxy/1.1"}, body)
    end
    n = n + 1
  end
  i = 0
  wrapped = 0
end
function request()
  i = i + 1
  if i > #requests then i = 1; wrapped = wrapped + 1 end
  return requests[i]
end
function done(summary, latency, requests)
  local wraps = 0
  for _, thread in ipairs(threads) do wraps = wraps + (thread:get("wrapped") or 0) end
  io.write(string.format('{"requests": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f, "non2xx": %d, ' ..
    '"errors": %d, "wrapped": %d}\n', summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, wraps))
end
""".replace("PATH", PATH)


# -- wrk ------------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The wrk binary: on the PATH, else installed with apt-get, else built from source in ~/.cache."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt:
        root = os.geteuid() == 0
        prefix = [] if root else (["sudo", "-n"] if shutil.which("sudo") else None)
        if prefix is not None:
            print("installing wrk with apt-get ...", flush=True)
            subprocess.run([*prefix, apt, "install", "-y", "wrk"], check=False, capture_output=True)
            found = shutil.which("wrk")
            if found:
                return found
    built = Path.home() / ".cache" / "beacon-bench" / "wrk"
    if not (built / "wrk").exists():
        print("building wrk from source ...", flush=True)
        built.parent.mkdir(parents=True, exist_ok=True)
        if not built.exists():
            subprocess.run(["git", "clone", "--depth", "1", WRK_SOURCE, str(built)], check=True)
        subprocess.run(["make", "-j2"], cwd=built, check=True, capture_output=True)
    return str(built / "wrk")


def write_requests(path: Path, count: int, prefix: str) -> None:
    """``count`` signed JOINs, one a line (signature TAB body), each from a distinct number."""
    validator = RequestValidator(AUTH_TOKEN)
    with path.open("w") as out:
        for n in range(count):
            sid = "SM" + secrets.token_hex(16)
            params = {"ToCountry": "US", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "", "FromZip": "",
                      "SmsSid": sid, "FromState": "", "SmsStatus": "received", "FromCity": "", "Body": "JOIN",
                      "FromCountry": "NG", "To": SMS_FROM, "ToZip": "", "NumSegments": "1", "MessageSid": sid,
                      "AccountSid": ACCOUNT_SID, "From": f"+234{prefix}{n:07d}", "ApiVersion": "2010-04-01"}
            out.write(f"{validator.compute_signature(PUBLIC_URL + PATH, params)}\t{urlencode(params)}\n")


def run_wrk(wrk: str, url: str, script: Path, requests: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s", "--timeout", "10s",
               "-s", str(script), url, "--", str(requests), str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    result["rps"] = result["requests"] / result["seconds"]
    return result


# -- the servers, each in its own process ---------------------------------------------------------


def bare_main(port: int) -> None:
    async def handler(request: web.Request) -> web.Response:
        await request.post()
        return web.Response(text=TWIML, content_type="text/xml")

    app = web.Application()
    app.router.add_post(PATH, handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=1024)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit("server did not start")


def start_beacon(home: Path, port: int, twilio_url: str, profile: str | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BEACON_ENV": "production", "BEACON_METRICS": "off",
           "BEACON_DATABASE_URL": f"sqlite:///{home / 'beacon.db'}", "BEACON_HOST": "127.0.0.1",
           "BEACON_PORT": str(port), "BEACON_KEYS": "k1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
           "BEACON_PUBLIC_URL": PUBLIC_URL, "BEACON_LOG_LEVEL": "warning", "BEACON_RATE_LIMITS": "off",
           "BEACON_KEYS_FILE": str(home / "keys.json"), "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
           "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_SMS_FROM": SMS_FROM, "TWILIO_API_BASE_URL": twilio_url}
    command = [str(Path(sys.executable).parent / "beacon"), "serve"]
    if profile:
        kind = "raw" if profile.endswith(".txt") else "flamegraph"
        command = [str(Path(sys.executable).parent / "py-spy"), "record", "-o", profile, "-r", "200", "-f", kind,
                   "--", *command]
    return subprocess.Popen(command, env=env, cwd=ROOT)


def settled(db: Path) -> tuple[int, float]:
    """Wait until the bot has processed every stored message and every reply has left: (stored, seconds)."""
    started = time.perf_counter()
    while True:
        with sqlite3.connect(db) as conn:
            stored, left = conn.execute("SELECT count(*), count(*) - count(processed_at) FROM inbound").fetchone()
            pending = conn.execute("SELECT count(*) FROM outbox WHERE status IN ('queued', 'claimed')").fetchone()[0]
        if not left and not pending:
            return int(stored), time.perf_counter() - started
        time.sleep(0.1)


def twilio_double_main(port_file: str) -> None:
    """Run the Twilio double until killed (in its own process: replies must not load the bench)."""
    import asyncio

    from tests.doubles.twilio_api import TwilioDouble

    async def main() -> None:
        double = TwilioDouble(ACCOUNT_SID, AUTH_TOKEN)
        await double.start()
        Path(port_file).write_text(double.base_url)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):  # stopped with SIGINT
        asyncio.run(main())


def describe(name: str, r: dict[str, Any]) -> str:
    extra = f"  non-2xx {r['non2xx']}" if r["non2xx"] else ""
    extra += f"  socket errors {r['errors']}" if r["errors"] else ""
    # The bare handler stores nothing: a request sent twice costs it the same. Beacon would dedupe it.
    extra += f"  REUSED requests ({r['wrapped']} wraps)" if r["wrapped"] and name == "beacon" else ""
    return f"{name:>6}: {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:7.1f} ms{extra}"


def main(args: argparse.Namespace) -> None:
    wrk = ensure_wrk()
    pool = args.pool
    print(f"{args.rounds} rounds of {args.seconds} s of wrk -t{args.threads} -c{args.connections} against each "
          f"server in turn; every beacon request a new person's signed JOIN ({pool} per round)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        script = home / "signed.lua"
        script.write_text(LUA)
        twilio_file = home / "twilio-url"
        double = subprocess.Popen([sys.executable, __file__, "--twilio-double", str(twilio_file)], cwd=ROOT)
        bare_port, beacon_port = free_port(), free_port()
        bare = subprocess.Popen([sys.executable, __file__, "--bare-server", str(bare_port)], cwd=ROOT)
        beacon = None
        try:
            while not twilio_file.exists() or not twilio_file.read_text():
                time.sleep(0.1)
            beacon = start_beacon(home, beacon_port, twilio_file.read_text(), args.profile)
            wait_listening(bare_port, bare)
            wait_listening(beacon_port, beacon)
            warm = home / "warm.txt"
            write_requests(warm, 300, "700")
            run_wrk(wrk, f"http://127.0.0.1:{beacon_port}{PATH}", script, warm,
                    argparse.Namespace(**{**vars(args), "seconds": 1, "connections": 4}))
            settled(home / "beacon.db")
            plain: list[dict[str, Any]] = []
            full: list[dict[str, Any]] = []
            for n in range(1, args.rounds + 1):
                requests = home / f"round{n}.txt"
                write_requests(requests, pool, f"8{n}")
                result = run_wrk(wrk, f"http://127.0.0.1:{bare_port}{PATH}", script, requests, args)
                plain.append(result)
                print(f"round {n} " + describe("bare", result), flush=True)
                result = run_wrk(wrk, f"http://127.0.0.1:{beacon_port}{PATH}", script, requests, args)
                full.append(result)
                print(f"round {n} " + describe("beacon", result), flush=True)
                stored, backlog = settled(home / "beacon.db")
                print(f"         then the bot answered everyone in {backlog:.1f} s ({stored} people stored in all)",
                      flush=True)
                requests.unlink()
        finally:
            for process in (beacon, bare, double):
                if process is not None:
                    process.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
    bare_rps = statistics.median(r["rps"] for r in plain)
    beacon_rps = statistics.median(r["rps"] for r in full)
    bare_p99 = statistics.median(r["p99_ms"] for r in plain)
    beacon_p99 = statistics.median(r["p99_ms"] for r in full)
    ratio = beacon_rps / bare_rps
    print(f"median bare {bare_rps:.0f} req/s p99 {bare_p99:.1f} ms; median beacon {beacon_rps:.0f} req/s "
          f"p99 {beacon_p99:.1f} ms")
    print(f"ratio beacon/bare: {ratio:.0%} (target >= 50%) -> {'met' if ratio >= 0.5 else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=int, default=6, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--pool", type=int, default=40000, help="distinct signed requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", help="py-spy profile of beacon serve: .svg, or .txt for stacks")
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)  # internal: run the bare server
    parser.add_argument("--twilio-double", help=argparse.SUPPRESS)  # internal: run the Twilio double
    arguments = parser.parse_args()
    if arguments.bare_server:
        bare_main(arguments.bare_server)
    elif arguments.twilio_double:
        twilio_double_main(arguments.twilio_double)
    else:
        main(arguments)
