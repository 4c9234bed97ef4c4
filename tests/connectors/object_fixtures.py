"""Fixtures for the object-store tests: moto_server (S3), the OSS test server, a fault-injecting TCP proxy.

conftest.py belongs to the whole suite, so the S3 and OSS test modules import these by name
(`from tests.connectors.object_fixtures import moto_server, ...`) and pytest picks them up there.
Servers are session-scoped (moto_server is ready in ~1.6 s) and polled until they answer.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from tests.connectors.oss_server import OSSServer

BUCKET = "atom-test"
S3_KEY_ID, S3_SECRET = "atom-test-key", "atom-test-secret"
OSS_KEY_ID, OSS_SECRET = "atom-oss-key", "atom-oss-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, tries: int = 300, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Poll until something accepts connections on `port` (bounded: `tries` x 50 ms)."""
    for _ in range(tries):
        if proc is not None and proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


# -- S3: moto_server ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real HTTP S3 endpoint (`moto_server`), started once per session; yields its URL."""
    binary = Path(sys.executable).parent / "moto_server"
    if importlib.util.find_spec("moto") is None or not binary.exists():
        pytest.skip("moto[server] is not installed: pip install 'moto[server]' to run the S3 tests")
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    proc = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        if not wait_for_port(port, proc=proc):
            pytest.fail(f"moto_server did not start on port {port} (exit code {proc.poll()})")
        url = f"http://127.0.0.1:{port}"
        s3_client(url).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def s3_client(endpoint: str, key_id: str = S3_KEY_ID, secret: str = S3_SECRET):  # type: ignore[no-untyped-def]
    """A plain boto3 client for set-up and checks."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )


@contextlib.contextmanager
def moto_auth(endpoint: str) -> Iterator[None]:
    """Make moto enforce IAM authentication inside the block (it accepts any key otherwise)."""
    import urllib.request

    def set_count(value: str) -> None:
        req = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth",
            data=value.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form body would hide the value from moto
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()

    set_count("0")
    try:
        yield
    finally:
        set_count("inf")


# -- OSS: the test server -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def oss_server() -> Iterator[OSSServer]:
    """The OSS-protocol test server (v1/v4 signatures checked), with bucket `atom-test`."""
    server = OSSServer({OSS_KEY_ID: OSS_SECRET}).start()
    server.create_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture
def oss(oss_server: OSSServer) -> Iterator[OSSServer]:
    """The session OSS server with counters reset and no faults left over by this test."""
    oss_server.reset_counts()
    yield oss_server
    oss_server.clear_faults()
    oss_server.allowed_ops.clear()
    if oss_server._httpd is None:  # a test stopped it: bring it back for the next one
        oss_server.start()


# -- a TCP proxy that can cut connections -------------------------------------------------------


class FaultProxy:
    """A TCP proxy to `127.0.0.1:upstream`; cuts chosen responses, and can go away and come back.

    `drop_after(nbytes, match=b"GET /bucket/key")` cuts the connection that next sends a request
    starting with `match`, after `nbytes` bytes of its response. `stop()` closes the listener and
    every connection (the server "goes away"); `start()` listens again on the same port.
    """

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.requests: list[bytes] = []
        """The head (request line and headers) of every request passed on."""
        self._faults: list[tuple[bytes, int]] = []
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drop_after(self, nbytes: int, match: bytes = b"GET ", times: int = 1) -> None:
        with self._lock:
            self._faults.extend([(match, nbytes)] * times)

    def start(self) -> FaultProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, server))
            state = {"cut": -1}
            threading.Thread(target=self._pump_up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(server, client, state), daemon=True).start()

    def _pump_up(self, src: socket.socket, dst: socket.socket, state: dict[str, int]) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                with self._lock:
                    if data[:4] in (b"GET ", b"PUT ", b"HEAD", b"POST", b"DELE"):
                        self.requests.append(data.split(b"\r\n\r\n", 1)[0])
                    for i, (match, nbytes) in enumerate(self._faults):
                        if data.startswith(match):
                            state["cut"] = nbytes
                            del self._faults[i]
                            break
                dst.sendall(data)
        self._close(src, dst)

    def _pump_down(self, src: socket.socket, dst: socket.socket, state: dict[str, int]) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                cut = state["cut"]
                if cut >= 0:
                    dst.sendall(data[:cut])
                    if len(data) >= cut:
                        break
                    state["cut"] = cut - len(data)
                    continue
                dst.sendall(data)
        self._close(src, dst)

    def _close(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with self._lock:
                self._sockets.discard(sock)


@pytest.fixture
def s3_proxy(moto_server: str) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the session's moto_server."""
    port = int(moto_server.rsplit(":", 1)[1])
    proxy = FaultProxy(port).start()
    yield proxy
    proxy.stop()


def fresh_key(ext: str = "parquet", name: str = "data") -> str:
    """A fresh object key `t/<hex>/<name>.<ext>`."""
    return f"t/{uuid.uuid4().hex[:12]}/{name}.{ext}"


# -- one fault interface over both stores -------------------------------------------------------


class Faults:
    """What the shared object-store tests do to a store: cut GETs, fail parts, count, go away."""

    def drop_get(self, key: str, nbytes: int, times: int = 1) -> None:
        raise NotImplementedError

    def fail_part(self, key: str) -> None:
        """The next part upload of `key` fails."""
        raise NotImplementedError

    def count(self, op: str) -> int:
        """Requests seen since the test began: op is get, range_get, list or part."""
        raise NotImplementedError

    def pending_uploads(self) -> int:
        """Multipart uploads started and neither completed nor aborted."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError


class ProxyFaults(Faults):
    """Faults for S3: a FaultProxy in front of moto_server (the connector talks to the proxy)."""

    def __init__(self, proxy: FaultProxy, moto: str) -> None:
        self.proxy = proxy
        self.moto = moto

    def drop_get(self, key: str, nbytes: int, times: int = 1) -> None:
        self.proxy.drop_after(nbytes, f"GET /{BUCKET}/{key}".encode(), times)

    def fail_part(self, key: str) -> None:
        self.proxy.drop_after(0, f"PUT /{BUCKET}/{key}?uploadId=".encode())

    def count(self, op: str) -> int:
        heads = [h for h in self.proxy.requests]
        if op == "get":
            return sum(h.startswith(f"GET /{BUCKET}/".encode()) for h in heads)
        if op == "range_get":
            return sum(h.startswith(f"GET /{BUCKET}/".encode()) and b"\r\nrange:" in h.lower() for h in heads)
        if op == "list":
            return sum(h.startswith(f"GET /{BUCKET}".encode()) and b"list-type=2" in h for h in heads)
        if op == "part":
            return sum(h.startswith(b"PUT ") and b"partNumber=" in h.split(b"\r\n", 1)[0] for h in heads)
        raise ValueError(op)

    def pending_uploads(self) -> int:
        return len(s3_client(self.moto).list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))

    def stop(self) -> None:
        self.proxy.stop()

    def start(self) -> None:
        self.proxy.start()


class ServerFaults(Faults):
    """Faults for OSS: the test server's own hooks."""

    _OPS: ClassVar[dict[str, str]] = {"get": "GetObject", "list": "ListObjectsV2", "part": "UploadPart"}

    def __init__(self, server: OSSServer) -> None:
        self.server = server

    def drop_get(self, key: str, nbytes: int, times: int = 1) -> None:
        self.server.drop_after(nbytes, times=times)

    def fail_part(self, key: str) -> None:
        self.server.fail_next("UploadPart", times=1)

    def count(self, op: str) -> int:
        if op == "range_get":
            return len(self.server.ranges)
        return self.server.counts[self._OPS[op]]

    def pending_uploads(self) -> int:
        return len(self.server.uploads)

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()
