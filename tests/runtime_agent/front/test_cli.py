"""`atom-runtime front` as a real process: routes by its state file after a restart, stops on SIGTERM."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

from tests.runtime_agent.conftest import agent_env
from tests.runtime_agent.front.conftest import (
    ADMIN,
    TOKEN,
    Backend,
    Servers,
    auth,
    free_port,
    infer_body,
    table,
)


class FrontProcess:
    """`python -m runtime_agent front ...` with its output read line by line."""

    def __init__(self, args: list[str], cwd: Path, **env: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runtime_agent", "front", *args],
            cwd=cwd,
            env=agent_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._pump = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._pump.start()

    def _read(self, stream: IO[str] | None) -> None:
        for line in stream or ():
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        while not any(text in line for line in self.seen):
            line = self.lines.get(timeout=timeout)
            assert line is not None, f"the front ended ({self.proc.wait()}) before {text!r}:\n{self.output}"
            self.seen.append(line)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout=30)
        self._pump.join(timeout=30)
        while (line := self.lines.get_nowait() if not self.lines.empty() else None) is not None:
            self.seen.append(line)
        return code

    @property
    def output(self) -> str:
        return "".join(self.seen)


@contextmanager
def running_front(args: list[str], cwd: Path, **env: str) -> Iterator[FrontProcess]:
    front = FrontProcess(args, cwd, **env)
    try:
        yield front
    finally:
        front.stop()


def test_the_front_process_serves_its_state_file_after_a_restart(servers: Servers, tmp_path: Path) -> None:
    v1, v2 = Backend(servers, "1", "v1"), Backend(servers, "2", "v2")
    state = tmp_path / "state" / "routes.json"
    port = free_port()
    args = ["--port", str(port), "--state", str(state)]
    url = f"http://127.0.0.1:{port}"
    routes = table(("1", 50, [v1.url]), ("2", 50, [v2.url]))

    with running_front(args, tmp_path, ATOM_FRONT_TOKEN=TOKEN) as front:
        front.wait_for("Uvicorn running")
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.post("/v2/models/m/infer", json=infer_body(1)).status_code == 503  # no table yet
            assert http.put(f"{ADMIN}/routes", json=routes, headers=auth()).status_code == 200
            seen = [
                http.post("/v2/models/m/infer", json=infer_body(i)).headers["x-version"] for i in range(4)
            ]
        assert sorted(seen) == ["1", "1", "2", "2"]
        code = front.stop()
    assert code in (0, -signal.SIGTERM), front.output  # uvicorn re-raises SIGTERM after its shutdown
    assert "routing table 1 from PUT routes: versions 1=50% (1 replica), 2=50% (1 replica)" in front.output
    assert "Finished server process" in front.output and TOKEN not in front.output
    assert json.loads(state.read_text())["versions"][1]["replicas"] == [v2.url]

    # restarted with no token and no control: it routes by the state file at once
    with running_front(args, tmp_path) as front:
        front.wait_for("Uvicorn running")
        with httpx.Client(base_url=url, timeout=30) as http:
            answers = [http.post("/v2/models/m/infer", json=infer_body(i)) for i in range(4)]
            assert http.get(f"{ADMIN}/routes").json() == {**routes, "mirror": None}
            assert http.put(f"{ADMIN}/routes", json=routes, headers=auth()).status_code == 403
        code = front.stop()
    assert code in (0, -signal.SIGTERM), front.output
    assert [a.status_code for a in answers] == [200] * 4
    assert sorted(a.headers["x-version"] for a in answers) == ["1", "1", "2", "2"]
    assert f"routing table 1 from the state file {state}" in front.output
    assert "ATOM_FRONT_TOKEN is not set" in front.output


def test_a_bad_state_file_stops_the_front_with_the_reason(tmp_path: Path) -> None:
    state = tmp_path / "routes.json"
    state.write_text('{"service": "svc", "versions": [{"version": "1", "weight": 100}]}')
    proc = subprocess.run(
        [sys.executable, "-m", "runtime_agent", "front", "--port", str(free_port()), "--state", str(state)],
        cwd=tmp_path,
        env=agent_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "versions[0].replicas: version '1' has weight 100 but no replicas" in proc.stderr
