"""HTTP(S) objects for the download cache: `HttpRangeSource`, byte ranges over plain `http.client`.

Each range is one GET on a keep-alive connection owned by the calling worker thread; the body
is read with `readinto` into one reusable 1 MiB buffer and handed to the cache, which
`pwrite`s it in place (the socket read and the write both release the GIL). This measured
faster than httpx streaming (see benchmarks/bench_files.py).

- `stat()` sends HEAD (following redirects; GET `bytes=0-0` when HEAD is refused or silent about
  ranges) and reports size, validator (strong ETag, else Last-Modified) and range support.
- Each range request carries `If-Range: <validator>`: when the object changed, the server
  answers 200 with the new whole object instead of 206, and `ObjectChanged` makes the cache
  restart cleanly. 416 (the object shrank) and a 200 with another ETag are treated the same.
- 404 -> TargetNotFound, 401 -> AuthenticationFailed, 403 -> PermissionDenied, 5xx/429 and
  dropped connections -> SourceUnavailable (the cache retries from the first missing byte).
- `uri` and every message drop user info and signed-URL query parameters.
"""

from __future__ import annotations

import base64
import http.client
import logging
import ssl
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from connectors.cache._fetch import ObjectChanged
from connectors.errors import (
    AuthenticationFailed,
    ConnectorConfigError,
    ConnectorError,
    PermissionDenied,
    RequestRejected,
    SourceUnavailable,
    TargetNotFound,
)
from connectors.ranged import RangeSource, RemoteObject, WriteAt

__all__ = ["HttpRangeSource", "display_url", "probe"]

logger = logging.getLogger(__name__)

_SECRET_PARAMS = (
    "signature",
    "sig",
    "token",
    "access_token",
    "x-amz-",
    "x-oss-",
    "x-goog-",
    "ossaccesskeyid",
    "awsaccesskeyid",
    "googleaccessid",
    "expires",
    "se",
    "sp",
    "sv",
    "sr",
    "skoid",
    "sktid",
    "skt",
    "ske",
    "sks",
    "skv",
)
_REDIRECTS = (301, 302, 303, 307, 308)
_BUFFER = 1 << 20


def _secret(name: str) -> bool:
    low = name.lower()
    return any(low == p or (p.endswith("-") and low.startswith(p)) for p in _SECRET_PARAMS)


def display_url(url: str) -> str:
    """`url` without user info and without signed-URL query parameters (safe for messages and keys)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _secret(k)])
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def _status_error(status: int, reason: str, name: str, headers: Any) -> ConnectorError:
    if status == 404 or status == 410:
        return TargetNotFound(f"{name} does not exist (HTTP {status}): check the URL", url=name)
    if status == 401:
        return AuthenticationFailed(
            f"{name} needs credentials (HTTP 401): set the connection's account/password or an "
            "Authorization header in source_conf headers",
            url=name,
        )
    if status == 403:
        return PermissionDenied(f"{name} is forbidden (HTTP 403): check the credentials' rights", url=name)
    if status == 429 or status >= 500:
        retry = headers.get("Retry-After") if headers is not None else None
        after = float(retry) if retry and retry.isdigit() else None
        return SourceUnavailable(
            f"{name} answered HTTP {status} {reason}: retry later", url=name, retry_after=after
        )
    return RequestRejected(f"{name} refused the request (HTTP {status} {reason})", url=name)


class HttpRangeSource(RangeSource):
    """One HTTP(S) object read by byte ranges (see the module docstring). Methods block.

    Example:
        >>> src = HttpRangeSource("https://example.com/data/train.parquet", headers={"X-Token": "..."})
        >>> async with await default_cache().fetch(src) as cached: ...
    """

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float = 30.0,
        max_redirects: int = 5,
    ) -> None:
        """Describe the object; no request is sent until `stat()`.

        Args:
            url: an absolute http:// or https:// URL.
            headers: extra request headers (e.g. Authorization); never logged.
            auth: (user, password) for HTTP basic auth.
            timeout: seconds a connect or a read may stall before the range is retried.
            max_redirects: redirects followed.
        """
        if urlsplit(url).scheme not in ("http", "https"):
            raise ConnectorConfigError(f"{display_url(url)} is not an http:// or https:// URL")
        self.url = url
        self.uri = display_url(url)
        self.timeout = timeout
        self.max_redirects = max_redirects
        self._headers = dict(headers or {})
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self._headers.setdefault("Authorization", f"Basic {token}")
        self._final = url  # after redirects
        self._remote: RemoteObject | None = None
        self._if_range = ""
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HttpRangeSource({self.uri!r})"

    # -- connections -----------------------------------------------------------------------------

    def _connection(self, url: str) -> http.client.HTTPConnection:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname, parts.port)
        pool: dict[Any, http.client.HTTPConnection] = self._local.__dict__.setdefault("pool", {})
        conn = pool.get(key)
        if conn is None:
            host = parts.hostname or ""
            if parts.scheme == "https":
                conn = http.client.HTTPSConnection(
                    host, parts.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                conn = http.client.HTTPConnection(host, parts.port, timeout=self.timeout)
            pool[key] = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self, url: str) -> None:
        parts = urlsplit(url)
        pool = self._local.__dict__.get("pool", {})
        conn = pool.pop((parts.scheme, parts.hostname, parts.port), None)
        if conn is not None:
            conn.close()

    def _request(
        self, method: str, url: str, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, str]:
        """Send one request, following redirects; returns the response and the final URL."""
        base_host = urlsplit(self.url).hostname
        for _ in range(self.max_redirects + 1):
            parts = urlsplit(url)
            send = dict(self._headers)
            if parts.hostname != base_host:
                send.pop("Authorization", None)  # never hand credentials to another host
            send.update(headers)
            path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
            for attempt in (0, 1):
                conn = self._connection(url)
                try:
                    conn.request(method, path, headers=send)
                    resp = conn.getresponse()
                    break
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    self._drop(url)  # a keep-alive connection the server had closed: one fresh try
                    if attempt:
                        raise
                except BaseException:
                    self._drop(url)
                    raise
            if resp.status in _REDIRECTS and resp.getheader("Location"):
                resp.read()
                url = urljoin(url, resp.getheader("Location", ""))
                continue
            return resp, url
        raise RequestRejected(f"{self.uri}: more than {self.max_redirects} redirects", url=self.uri)

    # -- RangeSource ---------------------------------------------------------------------------

    def stat(self) -> RemoteObject:
        """HEAD the object (GET bytes=0-0 when needed): size, validator, range support."""
        try:
            resp, final = self._request("HEAD", self.url, {"Accept-Encoding": "identity"})
            resp.read()
            status, headers = resp.status, resp.headers
            ranges = (headers.get("Accept-Ranges") or "").lower()
            length = headers.get("Content-Length")
            if status in (405, 501) or (
                status == 200 and (length is None or ranges not in ("bytes", "none"))
            ):
                resp, final = self._request(
                    "GET", self.url, {"Range": "bytes=0-0", "Accept-Encoding": "identity"}
                )
                status, headers = resp.status, resp.headers
                if status == 206:
                    resp.read()
                    total = (headers.get("Content-Range") or "").rpartition("/")[2]
                    length, ranges = (total if total.isdigit() else None), "bytes"
                else:
                    length, ranges = headers.get("Content-Length"), "none"
                    self._drop(final)  # do not read a whole body just to learn its size
        except (OSError, http.client.HTTPException) as exc:
            self._drop(self.url)
            raise SourceUnavailable(f"{self.uri} cannot be reached: {exc}", url=self.uri) from exc
        if status not in (200, 206):
            raise _status_error(status, resp.reason, self.uri, headers)
        if length is None or not length.isdigit():
            raise RequestRejected(
                f"{self.uri} does not say how large it is (no Content-Length): "
                "the file cache can only fetch objects of known size",
                url=self.uri,
            )
        etag = headers.get("ETag") or ""
        modified = headers.get("Last-Modified") or ""
        strong = etag if etag and not etag.startswith("W/") else ""
        self._final = final
        self._if_range = strong or modified
        self._remote = RemoteObject(self.uri, int(length), etag or modified, ranges == "bytes")
        return self._remote

    def read_range(self, start: int, end: int, write_at: WriteAt) -> None:
        """GET bytes [start, end) and hand them to `write_at` in order."""
        remote = self._remote or self.stat()
        whole = start == 0 and end >= remote.size
        headers = {"Accept-Encoding": "identity"}
        if not whole or remote.ranges:
            headers["Range"] = f"bytes={start}-{end - 1}"
            if self._if_range:
                headers["If-Range"] = self._if_range
        url = self._final
        try:
            resp, url = self._request("GET", url, headers)
        except (OSError, http.client.HTTPException) as exc:
            raise SourceUnavailable(f"{self.uri}: request for bytes {start}-{end} failed: {exc}") from exc
        try:
            skip = self._check(resp, start, end, remote)
            self._stream(resp, start, end, skip, write_at, url)
        finally:
            if not resp.isclosed():
                self._drop(url)

    def _check(self, resp: http.client.HTTPResponse, start: int, end: int, remote: RemoteObject) -> int:
        """Validate a range response; returns how many leading body bytes to skip."""
        status = resp.status
        if status == 206:
            got = (resp.getheader("Content-Range") or "").split()[-1:]
            first = got[0].partition("-")[0] if got else ""
            if first != str(start):
                raise SourceUnavailable(f"{self.uri}: asked for byte {start}, the server sent {got}")
            return 0
        if status == 200:
            etag = resp.getheader("ETag") or resp.getheader("Last-Modified") or ""
            length = resp.getheader("Content-Length")
            if (etag and remote.validator and etag != remote.validator) or (
                length is not None and int(length) != remote.size
            ):
                raise ObjectChanged(f"{self.uri} changed while it was downloaded (validator {etag!r})")
            if start or end < remote.size:
                if remote.ranges and self._if_range:
                    raise ObjectChanged(f"{self.uri} ignored If-Range: it changed while it was downloaded")
                return start  # a server without ranges: skip to our part
            return 0
        if status in (412, 416):
            raise ObjectChanged(f"{self.uri} changed while it was downloaded (HTTP {status})")
        raise _status_error(status, resp.reason, self.uri, resp.headers)

    def _stream(
        self, resp: http.client.HTTPResponse, start: int, end: int, skip: int, write_at: WriteAt, url: str
    ) -> None:
        buf: bytearray = self._local.__dict__.get("buf") or bytearray(_BUFFER)
        self._local.buf = buf
        view = memoryview(buf)
        pos = start
        try:
            while skip:
                n = resp.readinto(view[: min(len(buf), skip)])
                if not n:
                    raise SourceUnavailable(f"{self.uri}: the connection closed before byte {start}")
                skip -= n
            while pos < end:
                n = resp.readinto(view[: min(len(buf), end - pos)])
                if not n:
                    raise SourceUnavailable(f"{self.uri}: the connection dropped at byte {pos} of {end}")
                write_at(pos, view[:n])
                pos += n
        except (OSError, http.client.HTTPException) as exc:
            self._drop(url)
            raise SourceUnavailable(f"{self.uri}: the connection dropped at byte {pos}: {exc}") from exc

    def close(self) -> None:
        """Close every pooled connection (from any thread)."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except OSError as exc:  # pragma: no cover - closing a dead socket
                logger.debug("closing %s: %s", self.uri, exc)


def probe(url: str, headers: dict[str, str] | None = None, auth: tuple[str, str] | None = None) -> None:
    """Check a base URL answers and accepts the credentials (any non-error status will do).

    Raises:
        SourceUnavailable: unreachable or 5xx. AuthenticationFailed / PermissionDenied: 401 / 403.
    """
    source = HttpRangeSource(url, headers=headers, auth=auth, timeout=10.0)
    try:
        resp, _ = source._request("HEAD", url, {})
        resp.read()
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise SourceUnavailable(f"{source.uri} cannot be reached: {exc}", url=source.uri) from exc
    finally:
        source.close()
    if resp.status in (401, 403) or resp.status >= 500:
        raise _status_error(resp.status, resp.reason, source.uri, resp.headers)
