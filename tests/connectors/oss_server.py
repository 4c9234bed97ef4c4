"""A small OSS-protocol server for tests: enough of Aliyun OSS for the real oss2 client to run against.

Nothing on PyPI or npm serves the OSS protocol, and moto fails oss2's list and multipart calls, so
the ALIYUNOSS tests start this threaded `http.server` instead. It speaks what the connector uses:

- objects: PUT / GET / HEAD / DELETE, byte ranges (`bytes=a-b`, open `bytes=a-`, suffix
  `bytes=-n`), `x-oss-hash-crc64ecma` on every answer so oss2's CRC checks run, chunked request
  bodies (oss2 sends them for empty objects);
- GetBucket list v1 (`marker`) and v2 (`continuation-token`, `start-after`) with `prefix`,
  `delimiter`, `max-keys` and `encoding-type=url`, namespace-free XML as OSS returns it;
- multipart: InitiateMultipartUpload, UploadPart, ListParts, CompleteMultipartUpload (EntityTooSmall
  for any part but the last under 100 KB), AbortMultipartUpload;
- auth: v1 (`OSS id:signature`, HMAC-SHA1) and v4 (`OSS4-HMAC-SHA256`) signatures are checked;
  errors carry OSS's XML body and code (HEAD answers carry it base64 in `x-oss-err`);
- path style (`/bucket/key`, what oss2 sends to an IP endpoint) and virtual-host style;
- test hooks: per-operation request counts, `drop_after()` (cut GETs after N body bytes),
  `fail_next()` (answer an error), `hold()` (block an operation until released), `stop()` /
  `start()` on the same port (the server going away), per-key allowed operations (AccessDenied).
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
from collections import Counter
from http.server import ThreadingHTTPServer
from typing import Any

from tests.connectors.oss_ops import MIN_PART_SIZE, Fault, StoredObject, Upload, crc64
from tests.connectors.oss_protocol import OSSHandler

__all__ = ["MIN_PART_SIZE", "OSSServer", "crc64"]


class OSSServer:
    """An in-memory OSS endpoint on 127.0.0.1; `endpoint` is what oss2 connects to.

    Args:
        credentials: access key id -> secret; requests signed otherwise are refused.
        port: 0 picks a free port (kept across `stop()` / `start()`).
    """

    def __init__(self, credentials: dict[str, str] | None = None, *, port: int = 0) -> None:
        self.credentials = dict(credentials or {"test-key-id": "test-key-secret"})
        self.allowed_ops: dict[str, set[str]] = {}
        """Key id -> operations it may call (keys not listed may call everything)."""
        self.buckets: dict[str, dict[str, StoredObject]] = {}
        self.uploads: dict[str, Upload] = {}
        self.counts: Counter[str] = Counter()
        self.ranges: list[str] = []
        self.chunked_bodies = 0
        self.held: Counter[str] = Counter()
        self.lock = threading.RLock()
        self._faults: list[Fault] = []
        self._holds: dict[str, threading.Event] = {}
        self._port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> OSSServer:
        """Listen (again, on the same port after a `stop()`)."""
        httpd = _HTTPServer(("127.0.0.1", self._port), OSSHandler)
        httpd.oss = self
        self._port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="oss-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection, as a crashed server would."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.cut_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for event in self._holds.values():
            event.set()

    def __enter__(self) -> OSSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state and faults ------------------------------------------------------------------

    def create_bucket(self, name: str) -> None:
        with self.lock:
            self.buckets.setdefault(name, {})

    def put(self, bucket: str, key: str, data: bytes) -> None:
        """Store an object directly (test set-up)."""
        with self.lock:
            self.buckets[bucket][key] = StoredObject(
                data, f'"{hashlib.md5(data).hexdigest().upper()}"', time.time(), crc=crc64(data)
            )

    def reset_counts(self) -> None:
        with self.lock:
            self.counts.clear()
            self.ranges.clear()
            self.chunked_bodies = 0

    def drop_after(self, nbytes: int, *, times: int = 1, op: str = "GetObject") -> None:
        """The next `times` answers to `op` send their headers and `nbytes` of body, then hang up."""
        with self.lock:
            self._faults.append(Fault(op, times, drop_after=nbytes))

    def fail_next(self, op: str, *, status: int = 500, code: str = "InternalError", times: int = 1) -> None:
        """The next `times` calls of `op` are answered with an OSS error."""
        with self.lock:
            self._faults.append(Fault(op, times, status=status, code=code))

    def hold(self, op: str) -> threading.Event:
        """Block calls of `op` until the returned event is set (`held[op]` counts the waiting ones)."""
        event = threading.Event()
        with self.lock:
            self._holds[op] = event
        return event

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()
            for event in self._holds.values():
                event.set()
            self._holds.clear()

    def _take_fault(self, op: str) -> Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.op == op and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def _wait_if_held(self, op: str) -> None:
        with self.lock:
            event = self._holds.get(op)
            if event is None:
                return
            self.held[op] += 1
        try:
            event.wait(timeout=30)
        finally:
            with self.lock:
                self.held[op] -= 1


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    oss: OSSServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def cut_connections(self) -> None:
        with self.sockets_lock:
            sockets, self.open_sockets = list(self.open_sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client or a `stop()` cut the connection; nothing to report."""
