"""Control's one shared local Ray head: started the first time a run needs Ray, stopped with control.

`ray start --head --block` runs in its own process group on free ports (never 6379, Redis's port
and Ray's default) with its own short temp dir, so several heads on one machine never meet and
stopping one is killing its group. The dashboard is on (the Ray Jobs API lives there), bound to
127.0.0.1. Auth mode is the same for head and clients: `RAY_AUTH_MODE` from the environment,
`disabled` when unset.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from control.dispatch.agent_env import inherited
from control.errors import DispatchFailed

logger = logging.getLogger(__name__)

#: ports Ray must never take on this project's machines (Redis)
RESERVED_PORTS = frozenset({6379})


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct free TCP ports (none of them reserved)."""
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
            socks.append(sock)
            if port not in RESERVED_PORTS:
                ports.append(port)
    finally:
        for sock in socks:
            sock.close()
    return ports


def session_pids(sid: int) -> list[int]:
    """Every live process whose session id is `sid` (the head's `ray start` and all it started)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(entry.name))
    return pids


def _alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except (OSError, IndexError):
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def ray_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the head: built like an agent's (its jobs and workers inherit it), so
    nothing control holds (store URL, keys, tokens) reaches the cluster; auth mode consistent."""
    env = inherited(os.environ if base is None else base)
    env.setdefault("RAY_COLOR_PREFIX", "0")
    return env


def _ray_cli() -> str:
    exe = Path(sys.executable).with_name("ray")
    return str(exe) if exe.exists() else shutil.which("ray") or "ray"


@dataclass
class RayHead:
    """A local Ray head in its own process group.

    Attributes:
        num_cpus: CPUs the head offers (None: all of the machine's).
        num_gpus: GPUs it offers (None: what Ray detects); a number may declare GPUs for tests.
        gpu_ids: the devices it may use (its CUDA_VISIBLE_DEVICES), so the local adapter's GPUs
            stay apart from Ray's.
        address: `127.0.0.1:<gcs port>` once started (what `ray.init(address=...)` takes).
        dashboard_url: `http://127.0.0.1:<port>` (what `JobSubmissionClient` takes).
    """

    num_cpus: int | None = None
    num_gpus: int | None = None
    gpu_ids: list[str] | None = None
    state_file: Path | None = None
    address: str = ""
    dashboard_url: str = ""
    temp_dir: Path | None = None
    pid: int | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self.pid is not None and _alive(self.pid)

    def start(self, timeout: float = 60.0) -> str:
        """Start the head (no-op when it runs) and wait until its Jobs API answers; returns `address`.

        With a `state_file`, a head left by an earlier control that was killed is taken over
        instead (its jobs go on and stay visible), and a new head is recorded there.

        Raises:
            DispatchFailed: Ray did not start (the last lines of its output are in the message).
        """
        with self._lock:
            if self.running:
                return self.address
            if self._adopt():
                return self.address
            address = self._start(timeout)
            self._record()
            return address

    def _adopt(self) -> bool:
        """Take over the head recorded in `state_file` when it still runs and answers."""
        if self.state_file is None or not self.state_file.is_file():
            return False
        try:
            state = json.loads(self.state_file.read_text())
            pid, address, url = int(state["pid"]), str(state["address"]), str(state["dashboardUrl"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if not _alive(pid) or "ray" not in _cmdline(pid):
            return False
        import httpx  # deferred: only a starting head needs it here

        try:
            if httpx.get(f"{url}/api/version", timeout=3).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
        self.pid, self.address, self.dashboard_url = pid, address, url
        self.temp_dir = Path(state["tempDir"]) if state.get("tempDir") else None
        logger.info("ray: took over the local head at %s (pid %d) left by an earlier control", address, pid)
        return True

    def _record(self) -> None:
        if self.state_file is None or self.pid is None:
            return
        state = {
            "pid": self.pid,
            "address": self.address,
            "dashboardUrl": self.dashboard_url,
            "tempDir": str(self.temp_dir or ""),
        }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_file)

    def _start(self, timeout: float) -> str:
        gcs, dash, client, agent_grpc, agent_http, metrics, rt_env = free_ports(7)
        self.temp_dir = Path(tempfile.mkdtemp(prefix="atomray-", dir="/tmp"))
        argv = [
            _ray_cli(),
            "start",
            "--head",
            "--block",
            f"--port={gcs}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            f"--ray-client-server-port={client}",
            f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--dashboard-agent-listen-port={agent_http}",
            f"--metrics-export-port={metrics}",
            f"--runtime-env-agent-port={rt_env}",
            f"--temp-dir={self.temp_dir}",
            "--disable-usage-stats",
        ]
        if self.num_cpus is not None:
            argv.append(f"--num-cpus={self.num_cpus}")
        if self.num_gpus is not None:
            argv.append(f"--num-gpus={self.num_gpus}")
        log = self.temp_dir / "head.log"
        logger.info("ray: starting a local head on port %d (dashboard %d)", gcs, dash)
        started = time.monotonic()
        with open(log, "wb") as out:
            env = ray_env()
            if self.gpu_ids is not None:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpu_ids)
            self._proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self._proc.pid
        self.address = f"127.0.0.1:{gcs}"
        self.dashboard_url = f"http://127.0.0.1:{dash}"
        import httpx  # deferred: only a starting head needs it here

        deadline = started + timeout
        while True:
            if self._proc.poll() is not None:
                tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
                self._cleanup()
                raise DispatchFailed(f"the local Ray head did not start: {tail or 'no output'}")
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                nodes = httpx.get(f"{self.dashboard_url}/api/v0/nodes", params={"limit": "10"}, timeout=2)
                if nodes.status_code == 200 and nodes.json()["data"]["result"]["result"]:
                    break  # the Jobs API answers and the head node has registered its resources
            if time.monotonic() > deadline:
                self.stop()
                raise DispatchFailed(f"the local Ray head did not answer within {timeout:.0f} s (log: {log})")
            time.sleep(0.2)
        logger.info("ray: head ready at %s in %.1f s", self.address, time.monotonic() - started)
        return self.address

    def stop(self, grace: float = 3.0) -> None:
        """Stop the head and every Ray process of its session (workers have groups of their own)."""
        with self._lock:
            head = self.pid
            if head is None:
                return
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for pid in session_pids(head):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, sig)
                deadline = time.monotonic() + grace
                while time.monotonic() < deadline and any(_alive(p) for p in session_pids(head)):
                    time.sleep(0.1)
                if self._proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self._proc.wait(0.5)
            self._cleanup()

    def _cleanup(self) -> None:
        self._proc = None
        self.pid = None
        if self.state_file is not None:
            self.state_file.unlink(missing_ok=True)
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
