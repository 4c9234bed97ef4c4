"""Fixtures and helpers for the REDIS connector tests: the test server, key prefixes, a cluster, a proxy.

The server is env ATOM_TEST_REDIS_URL (`redis://host:port/db` or `unix:///path/redis.sock`) when
set, else 127.0.0.1:6379; tests skip with a reason when it does not answer. Every test writes
under its own prefix `atomtest:<hex>:` and the fixture deletes everything under it afterwards.
Import the fixtures you use into the test module (`from tests.connectors.redis_fixtures import ...`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import redis

from connectors import ConnectionConfig

URL = os.environ.get("ATOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def server_kwargs() -> dict[str, Any]:
    """redis-py connection arguments for the test server."""
    parsed = urlparse(URL)
    if parsed.scheme == "unix":
        return {"unix_socket_path": parsed.path}
    return {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 6379,
        "db": int(parsed.path.strip("/") or 0),
        "username": parsed.username or None,
        "password": parsed.password or None,
    }


def base_config(**changes: Any) -> ConnectionConfig:
    """A ConnectionConfig for the test server (fields overridable)."""
    kw = server_kwargs()
    fields: dict[str, Any] = {"space": str(kw.get("db", 0))}
    if "unix_socket_path" in kw:
        fields["source_conf"] = {"unix_socket": kw["unix_socket_path"]}
    else:
        fields.update(
            addr=kw["host"], port=kw["port"], account=kw["username"] or "", password=kw["password"] or ""
        )
    fields.update(changes)
    return ConnectionConfig("REDIS", **fields)


@pytest.fixture(scope="session")
def redis_admin() -> Iterator[redis.Redis]:
    """A plain redis-py client for set-up and checks; skips when no server answers."""
    client = redis.Redis(socket_connect_timeout=2, **server_kwargs())
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        pytest.skip(f"Redis at {URL} unreachable ({exc}): start redis-server or set ATOM_TEST_REDIS_URL")
    yield client
    client.close()


@pytest.fixture
def redis_config(redis_admin: redis.Redis) -> ConnectionConfig:
    return base_config()


def drop_prefix(client: Any, prefix: str) -> None:
    """Delete every key under `prefix`, and staging keys of sinks that wrote there."""
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in prefix)
    for pattern in (escaped + "*", "*__atom_stage:*" + escaped + "*", "*__atom_meta:" + escaped + "*"):
        batch = list(client.scan_iter(match=pattern, count=1000))
        for i in range(0, len(batch), 500):
            client.unlink(*batch[i : i + 500])


@pytest.fixture
def prefix(redis_admin: redis.Redis) -> Iterator[str]:
    """A fresh key prefix `atomtest:<hex>:`; everything under it is deleted afterwards."""
    name = f"atomtest:{uuid.uuid4().hex[:10]}:"
    yield name
    drop_prefix(redis_admin, name)


def free_port() -> int:
    """A free TCP port whose cluster bus port (+10000) is free too."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10_000 > 65_535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair found")


def wait_for(predicate: Any, what: str, tries: int = 400) -> None:
    """Poll `predicate` (bounded); raise when it never holds."""
    for _ in range(tries):
        try:
            if predicate():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.025)
    raise RuntimeError(f"timed out waiting for {what}")


@dataclass
class Cluster:
    """A throw-away Redis Cluster of three primaries on free ports."""

    ports: list[int]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=2)

    def config(self, **changes: Any) -> ConnectionConfig:
        fields: dict[str, Any] = {"addr": "127.0.0.1", "port": self.ports[0], "colony_type": "GROUP"}
        fields.update(changes)
        return ConnectionConfig("REDIS", **fields)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Cluster]:
    """Start 3 `redis-server --cluster-enabled yes`, split the slots, wait for cluster_state:ok."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: the cluster tests need it to start a private cluster")
    workdir = Path(tempfile.mkdtemp(prefix="atom-redis-cluster-"))
    cluster = Cluster([free_port() for _ in range(3)])
    try:
        for port in cluster.ports:
            args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
            args += ["--cluster-config-file", f"nodes-{port}.conf", "--dir", str(workdir), "--save", ""]
            args += ["--appendonly", "no", "--cluster-node-timeout", "3000", "--protected-mode", "no"]
            with (workdir / f"{port}.log").open("wb") as log:  # the child keeps its own descriptor
                cluster.procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
        for port in cluster.ports:
            wait_for(lambda p=port: cluster.client(p).ping(), f"redis-server on port {port}")
        share = 16384 // 3
        ranges = [(0, share - 1), (share, 2 * share - 1), (2 * share, 16383)]
        for port, (lo, hi) in zip(cluster.ports, ranges, strict=True):
            cluster.client(port).execute_command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
        for port in cluster.ports[1:]:
            cluster.client(port).execute_command("CLUSTER", "MEET", "127.0.0.1", cluster.ports[0])

        def ok() -> bool:
            return all(
                b"cluster_state:ok" in cluster.client(p).execute_command("CLUSTER", "INFO")
                for p in cluster.ports
            )

        wait_for(ok, "cluster_state:ok", tries=800)
        yield cluster
    finally:
        for proc in cluster.procs:
            proc.kill()
        for proc in cluster.procs:
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def unix_redis(tmp_path: Path) -> Iterator[str]:
    """A private `redis-server --port 0 --unixsocket PATH`; yields the socket path."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: this test starts a private one on a unix socket")
    path = tmp_path / "r.sock"
    args = [binary, "--port", "0", "--unixsocket", str(path), "--save", "", "--dir", str(tmp_path)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: redis.Redis(unix_socket_path=str(path)).ping(), "the unix-socket redis-server")
        yield str(path)
    finally:
        proc.kill()
        proc.wait()


class Proxy:
    """A TCP proxy to the test server whose connections the test can cut, or refuse outright."""

    def __init__(self, target: tuple[str, int] | str) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.accepting = True
        self.links: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.accepting:
                client.close()
                continue
            if isinstance(self.target, str):
                upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                upstream.connect(self.target)
            else:
                upstream = socket.create_connection(self.target)
            with self.lock:
                self.links += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self) -> None:
        """Drop every open connection (as a server restart would)."""
        with self.lock:
            links, self.links = self.links, []
        for s in links:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def refuse(self) -> None:
        """Stay down: the port refuses new connections and open ones are cut."""
        self.accepting = False
        self.listener.close()
        self.cut()

    def close(self) -> None:
        self.refuse()


def upstream() -> tuple[str, int] | str:
    """Where a proxy in front of the test server connects to."""
    kw = server_kwargs()
    return kw["unix_socket_path"] if "unix_socket_path" in kw else (kw["host"], kw["port"])
