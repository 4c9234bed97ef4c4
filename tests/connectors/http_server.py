"""A threaded test HTTP file server with byte ranges, validators, counters and injectable faults.

Serves the files under a root directory with `os.sendfile`. Supports HEAD, `Range` (one range:
`a-b`, `a-`, suffix `-n`), `ETag`/`Last-Modified`, `If-Range`, and for tests:

- counters per path: requests by method, GET requests with a Range, body bytes sent;
- `rate`: a per-connection rate limit in bytes/s (each connection sends at most that);
- `drop_after(path, n, times)`: the next `times` GET responses of `path` close the connection
  after `n` body bytes;
- `ranges=False`: a server that ignores `Range` and sends no `Accept-Ranges`;
- `gate`: a `threading.Event` every GET body waits for (holds downloads until a test releases it);
- `status[path]` forces a status (401, 403, 500, ...), `redirects[path]` answers 302 to a URL,
  `etags[path]` overrides the ETag.

Run it standalone (the benchmark does): `python -m tests.connectors.http_server --root DIR
[--port 0] [--rate BYTES_PER_S]`; it prints `READY <port>` when it listens.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import email.utils
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


class FileServer:
    """The server and its knobs; `with FileServer(root) as srv: srv.url("x.csv")`."""

    def __init__(self, root: Path, *, rate: float | None = None, ranges: bool = True, port: int = 0) -> None:
        self.root = Path(root)
        self.rate = rate
        self.ranges = ranges
        self.gate: threading.Event | None = None
        self.status: dict[str, int] = {}
        self.redirects: dict[str, str] = {}
        self.etags: dict[str, str] = {}
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        self.range_requests: collections.Counter[str] = collections.Counter()
        self.bytes_sent: collections.Counter[str] = collections.Counter()
        self.active = 0  # responses sending a body right now
        self._drops: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"server_state": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def start(self) -> FileServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def drop_after(self, path: str, nbytes: int, times: int = 1) -> None:
        """The next `times` GETs of `path` close the connection after `nbytes` body bytes."""
        with self._lock:
            self._drops.setdefault("/" + path.lstrip("/"), []).extend([nbytes] * times)

    def take_drop(self, path: str) -> int | None:
        with self._lock:
            pending = self._drops.get(path)
            return pending.pop(0) if pending else None

    def count(self, path: str, method: str = "GET") -> int:
        return self.requests[(method, "/" + path.lstrip("/"))]

    def sent(self, path: str) -> int:
        return self.bytes_sent["/" + path.lstrip("/")]

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.range_requests.clear()
            self.bytes_sent.clear()


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """[start, end) of a single `bytes=` range, or None when unsatisfiable/unsupported."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    if not first:
        n = int(last)
        return (max(0, size - n), size) if n else None
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    return (start, end) if start < size and start < end else None


class _Handler(BaseHTTPRequestHandler):
    server_state: FileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default logging
        pass

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError):  # clients drop connections on purpose
            super().handle()

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        state = self.server_state
        path = unquote(urlsplit(self.path).path)
        with state._lock:
            state.requests[(self.command, path)] += 1
            if self.headers.get("Range") and not head:
                state.range_requests[path] += 1
        if path in state.status:
            return self._empty(state.status[path])
        if path in state.redirects:
            return self._empty(302, {"Location": state.redirects[path]})
        file = (state.root / path.lstrip("/")).resolve()
        if not file.is_relative_to(state.root.resolve()) or not file.is_file():
            return self._empty(404)
        with open(file, "rb") as fh:
            st = os.fstat(fh.fileno())
            size = st.st_size
            etag = state.etags.get(path) or f'"{st.st_mtime_ns:x}-{size:x}"'
            modified = email.utils.formatdate(st.st_mtime, usegmt=True)
            start, end, status = 0, size, 200
            wanted = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if wanted and state.ranges and (if_range is None or if_range in (etag, modified)):
                span = _parse_range(wanted, size)
                if span is None:
                    return self._empty(416, {"Content-Range": f"bytes */{size}"})
                start, end, status = span[0], span[1], 206
            self.send_response(status)
            self.send_header("Content-Length", str(end - start))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            if state.ranges:
                self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            self.end_headers()
            if head:
                return None
            self.wfile.flush()
            if state.gate is not None:
                state.gate.wait()
            limit = state.take_drop(path)
            with state._lock:
                state.active += 1
            try:
                self._send_body(fh, start, end, path, limit)
            finally:
                with state._lock:
                    state.active -= 1
        return None

    def _send_body(self, fh: Any, start: int, end: int, path: str, limit: int | None) -> None:
        state = self.server_state
        sock = self.connection
        out = sock.fileno()
        pos = start
        stop = end if limit is None else min(end, start + limit)
        slice_bytes = int(state.rate / 50) if state.rate else 8 << 20
        began = time.monotonic()
        try:
            while pos < stop:
                n = os.sendfile(out, fh.fileno(), pos, min(slice_bytes, stop - pos))
                if not n:
                    break
                pos += n
                with state._lock:
                    state.bytes_sent[path] += n
                if state.rate:
                    ahead = (pos - start) / state.rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        if pos < end:  # the injected fault: cut the connection mid-body
            self.close_connection = True
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _empty(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="test HTTP file server")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=None, help="per-connection bytes/s")
    parser.add_argument("--no-ranges", action="store_true")
    args = parser.parse_args(argv)
    server = FileServer(args.root, rate=args.rate, ranges=not args.no_ranges, port=args.port)
    sys.stdout.write(f"READY {server.port}\n")
    sys.stdout.flush()
    stats = threading.Thread(target=_report_on_stdin, args=(server,), daemon=True)
    stats.start()
    with contextlib.suppress(KeyboardInterrupt):
        server.httpd.serve_forever(poll_interval=0.1)
    return 0


def _report_on_stdin(server: FileServer) -> None:
    """Each line on stdin ("stats" / "reset") answers with the counters as one line on stdout."""
    for line in sys.stdin:
        command = line.strip()
        if command == "reset":
            server.reset_counters()
        gets = sum(n for (method, _), n in server.requests.items() if method == "GET")
        sys.stdout.write(f"STATS gets={gets} bytes={sum(server.bytes_sent.values())}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
