"""A real control server as a child process, for tests that kill it with SIGKILL and start it again."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.conftest import wait_for


class ControlProcess:
    """`python -m control.cli server` as a child process, killed with SIGKILL and started again."""

    def __init__(
        self,
        home: Path,
        port: int,
        log: Path,
        *,
        heartbeat_timeout: float = 30,
        env: dict[str, str] | None = None,
    ) -> None:
        self.home = home
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.env = {
            **os.environ,
            "ATOM_HOME": str(home),
            "ATOM_PORT": str(port),
            "ATOM_HEARTBEAT_TIMEOUT": str(heartbeat_timeout),
            "ATOM_RECONCILE_INTERVAL": "0.3",
            "ATOM_HEARTBEAT_INTERVAL": "1",  # inherited by the agents it starts
            "RAY_AUTH_MODE": "disabled",
            "NO_COLOR": "1",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "control.cli", "server"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def ready(self) -> None:
        async def answers() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"control exited with {self.proc.returncode}: {self.log.read_text()}")
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    return (await http.get(f"{self.url}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(answers, timeout=60, what="control to answer")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def kill_started(self) -> None:
        """Kill every agent and service the store names (started by this or an earlier control)."""
        db = self.home / "atom.db"
        if not db.exists():
            return
        with contextlib.closing(sqlite3.connect(db)) as conn:
            ids = [row[0] for row in conn.execute("SELECT external_id FROM schedules")]
            ids += [row[0] for row in conn.execute("SELECT external_id FROM services")]
            ids += [row[0] for row in conn.execute("SELECT external_id FROM service_fronts")]
        for external_id in ids:
            if external_id and external_id.startswith("pid:"):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(external_id.split(":")[1]), signal.SIGKILL)
