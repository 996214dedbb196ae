"""SQLite serves one process: a second `beacon serve` or `beacon worker` on the same file is refused with one
line and a non-zero exit, one-off commands still work beside it, and a killed process leaves no stale lock."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.reliability.harness import BEACON, Server, create_token, free_port, server_env


def refused(env: dict[str, str], home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BEACON, *args], env=env, cwd=home, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
async def test_a_second_process_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    first = Server(env, tmp_path)
    try:
        await first.start()
        for args in (("worker",), ("serve", "--port", str(free_port()))):
            result = refused(env, tmp_path, *args)
            assert result.returncode != 0
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            assert lines[0].startswith("beacon: error: another Beacon process (pid ")
            assert "SQLite takes one" in lines[0] and "PostgreSQL" in lines[0]
        assert create_token(env, tmp_path, "responder", "beside")  # a one-off command is no second server
        first.kill()  # kill -9: the kernel drops the lock with the process
        await first.start()
    finally:
        first.stop()
    assert (tmp_path / "beacon.db.lock").exists()
