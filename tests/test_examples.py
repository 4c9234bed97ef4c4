"""The README's connector example runs as written against the machine's MariaDB and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_SOCKET, MYSQL_USER, mysql_available

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.mysql, pytest.mark.redis]


def test_connectors_script_runs_against_real_stores() -> None:
    why = mysql_available()
    if why:
        pytest.skip(why)
    auth = MYSQL_USER + (f":{MYSQL_PASSWORD}" if MYSQL_PASSWORD else "")
    mysql = (
        f"mysql://{auth}@localhost/test?unix_socket={MYSQL_SOCKET}"
        if MYSQL_SOCKET
        else f"mysql://{auth}@{MYSQL_HOST}:{MYSQL_PORT}/test"
    )
    redis = os.environ.get("ATOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "examples/connectors_script.py",
                "--rows",
                "5000",
                "--mysql",
                mysql,
                "--redis",
                redis,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        _clean_up(redis)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("file: 5000 rows written") for line in lines), proc.stdout
    assert "mysql: 5000 rows read by keyset pages, 10 upserted" in lines, proc.stdout
    assert "redis: 1000 hashes read back with SCAN + pipelines" in lines, proc.stdout


def _clean_up(redis_url: str) -> None:
    import redis as redis_py

    from tests.conftest import mysql_connect

    conn = mysql_connect("test")
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS example_scores, example_daily")
    conn.close()
    client = redis_py.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match="example:score:*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()
