"""A real Docker engine for the tests (tests/docker_support.py builds Atom's images on it).

Stand-in: none. This is Debian's dockerd (docker.io), started by the tests on a private socket
with the bridge and iptables off (containers use `--network host`), its data root in a
persistent cache (`ATOM_TEST_CACHE`, default `~/.cache/atom-tests`) so that images and the
build cache outlive a run; it reads its own daemon config, not /etc/docker/daemon.json.

Both xdist workers share one engine: an fcntl lock serialises starting and stopping (and, in
docker_support, building), each user registers its pid, and the last user to leave stops
dockerd by its pid. An engine named by `ATOM_TEST_DOCKER_HOST` is used as it is and never
stopped. Where dockerd is missing and the tests run as root, docker.io and debootstrap are
installed with apt-get (as .ci/services does for MariaDB).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class EngineUnavailable(Exception):
    """No Docker engine can start here; the message is one line saying why."""


def cache_dir() -> Path:
    """The persistent cache: dockerd's data root, the lock, the build logs."""
    path = Path(os.environ.get("ATOM_TEST_CACHE") or Path.home() / ".cache" / "atom-tests")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run_dir() -> Path:
    # socket and exec root: short, local paths (a unix socket path holds at most 107 bytes)
    tag = hashlib.sha256(str(cache_dir()).encode()).hexdigest()[:8]
    path = Path(f"/tmp/atom-docker-{os.getuid()}-{tag}")
    path.mkdir(mode=0o700, exist_ok=True)
    return path


_held: dict[str, int] = {}


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """An exclusive fcntl lock on `{cache}/{name}.lock` across processes; re-entrant in one."""
    if _held.get(name):
        _held[name] += 1
        try:
            yield
        finally:
            _held[name] -= 1
        return
    with open(cache_dir() / f"{name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        _held[name] = 1
        try:
            yield
        finally:
            _held[name] = 0
            fcntl.flock(fh, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _kill_and_wait(pid: int, *, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)


@functools.cache
def docker_cli() -> str:
    """A docker CLI that can build with BuildKit: buildx, or a 20.10 client's built-in builder."""
    candidates = [c for c in (shutil.which("docker"), "/usr/bin/docker") if c and os.access(c, os.X_OK)]
    for cli in candidates:
        probe = subprocess.run([cli, "buildx", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return cli
        version = subprocess.run(
            [cli, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True, timeout=30
        ).stdout
        if re.match(r"(1\d|20|21|22)\.", version):
            return cli
    raise EngineUnavailable(
        "no docker CLI that builds with BuildKit here (install docker.io, or the buildx plugin)"
    )


@dataclass
class DockerEngine:
    """A Docker engine the tests may use.

    host: the engine's address, `unix:///.../docker.sock`.
    pid: dockerd's pid when these tests started it (None for ATOM_TEST_DOCKER_HOST).
    env: os.environ plus DOCKER_HOST (and DOCKER_BUILDKIT=1), for the `docker` CLI.
    """

    host: str
    pid: int | None = None
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.env:
            self.env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "1"}

    def client(self) -> Any:
        """A docker SDK client on this engine (close it when done)."""
        import docker

        return docker.DockerClient(base_url=self.host, timeout=120)

    def ping(self) -> bool:
        try:
            client = self.client()
        except Exception:  # noqa: BLE001 - any failure means "does not answer"
            return False
        try:
            return bool(client.ping())
        except Exception:  # noqa: BLE001
            return False
        finally:
            client.close()

    def docker(
        self, *args: str, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI on this engine; output as text."""
        proc = subprocess.run(
            [docker_cli(), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:2])} failed: {proc.stderr.strip()[-2000:]}")
        return proc

    def image_exists(self, ref: str) -> bool:
        return self.docker("image", "inspect", ref, check=False).returncode == 0


# -- the engine ----------------------------------------------------------------------------------


def _dockerd_paths() -> dict[str, Path]:
    run = _run_dir()
    return {
        "sock": run / "docker.sock",
        "pid": run / "docker.pid",
        "exec": run / "exec",
        "users": run / "users",
        "data": cache_dir() / "docker-data",
        "log": cache_dir() / "dockerd.log",
    }


def install_packages() -> None:
    """apt-get install docker.io and debootstrap, as .ci/services does for MariaDB (root only)."""
    if os.getuid() != 0 or not shutil.which("apt-get"):
        raise EngineUnavailable(
            "no Docker engine: dockerd is not installed (apt-get install docker.io debootstrap) "
            "and these tests are not root to install it"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "docker.io", "debootstrap"],
    ):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            raise EngineUnavailable(f"no Docker engine: `{' '.join(cmd)}` failed: {last}")


def _dockerd_binary() -> str:
    found = shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)
    if found:
        return found
    install_packages()
    found = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if not os.path.exists(found):
        raise EngineUnavailable("no Docker engine: dockerd is still missing after installing docker.io")
    return found


def _stop_dockerd(paths: dict[str, Path]) -> None:
    pid = _read_pid(paths["pid"])
    if pid is not None and _alive(pid):
        _kill_and_wait(pid, grace=40)
    # a dockerd killed hard leaves the containerd it manages behind
    containerd = _read_pid(paths["exec"] / "containerd" / "containerd.pid")
    if containerd is not None and _alive(containerd):
        _kill_and_wait(containerd, grace=10)
    for key in ("pid", "sock"):
        paths[key].unlink(missing_ok=True)


def _start_dockerd(paths: dict[str, Path]) -> int:
    if os.getuid() != 0:
        raise EngineUnavailable(
            f"no Docker engine: dockerd needs root (these tests run as uid {os.getuid()}); "
            "set ATOM_TEST_DOCKER_HOST to an engine"
        )
    dockerd = _dockerd_binary()
    _stop_dockerd(paths)  # a stale one from a run that was killed
    paths["data"].mkdir(parents=True, exist_ok=True)
    host = f"unix://{paths['sock']}"
    # its own config (not /etc/docker/daemon.json): the build cache is trimmed to 8 GB
    config = _run_dir() / "daemon.json"
    config.write_text(json.dumps({"builder": {"gc": {"enabled": True, "defaultKeepStorage": "8GB"}}}))
    argv = [
        dockerd,
        "--config-file", str(config),
        "--host", host,
        "--data-root", str(paths["data"]),
        "--exec-root", str(paths["exec"]),
        "--pidfile", str(paths["pid"]),
        "--bridge=none", "--iptables=false", "--ip6tables=false",
    ]  # fmt: skip
    with open(paths["log"], "ab") as log:
        # a shell in the background detaches dockerd from this worker: it must outlive it when
        # the other worker still uses the engine; it is stopped by its pid file
        subprocess.run(
            ["sh", "-c", 'exec "$@" </dev/null &', "dockerd", *argv],
            stdout=log, stderr=log, start_new_session=True, check=True,
        )  # fmt: skip
    engine = DockerEngine(host)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pid = _read_pid(paths["pid"])
        if pid is not None and engine.ping():
            return pid
        time.sleep(0.2)
    _stop_dockerd(paths)
    tail = paths["log"].read_text(errors="replace").strip().splitlines()[-1:] or ["(empty)"]
    raise EngineUnavailable(
        f"no Docker engine: dockerd did not answer on {host} within 60 s: {tail[0][-200:]}"
    )


def _users(paths: dict[str, Path]) -> list[int]:
    """Pids of live users; forgets those that died."""
    paths["users"].mkdir(exist_ok=True)
    live = []
    for entry in paths["users"].iterdir():
        pid = int(entry.name) if entry.name.isdigit() else -1
        if pid > 0 and _alive(pid):
            live.append(pid)
        else:
            entry.unlink(missing_ok=True)
    return live


def acquire_engine() -> DockerEngine:
    """The shared engine, started if needed; pair with release_engine. Raises EngineUnavailable."""
    external = os.environ.get("ATOM_TEST_DOCKER_HOST")
    if external:
        engine = DockerEngine(external)
        if not engine.ping():
            raise EngineUnavailable(f"no Docker engine: ATOM_TEST_DOCKER_HOST={external} does not answer")
        return engine
    paths = _dockerd_paths()
    with locked("engine"):
        engine = DockerEngine(f"unix://{paths['sock']}")
        pid = _read_pid(paths["pid"])
        if pid is None or not _alive(pid) or not engine.ping():
            pid = _start_dockerd(paths)
        _users(paths)
        (paths["users"] / str(os.getpid())).touch()
        engine.pid = pid
        return engine


def release_engine(engine: DockerEngine) -> None:
    """This process stops using the engine; the last user stops dockerd."""
    if engine.pid is None:
        return
    paths = _dockerd_paths()
    with locked("engine"):
        (paths["users"] / str(os.getpid())).unlink(missing_ok=True)
        if not _users(paths):
            _stop_dockerd(paths)


def cleanup() -> bool:
    """Stop the engine if nobody uses it any more (after a run that was killed); True if stopped."""
    paths = _dockerd_paths()
    if not paths["pid"].exists():
        return False
    with locked("engine"):
        if _users(paths):
            return False
        _stop_dockerd(paths)
        return True
