"""The front's HTTP client to the replicas: forwards a request as is and reads the answer whole.

A few shared `httpx.AsyncClient`s with keep-alive pooling (`POOL_SHARDS`, taken in turn), never one
per request; no default headers, cookies or redirects of their own, so what the caller sent is what
the replica sees (hop-by-hop headers aside). A failure that happened before anything was sent
raises `NotSent` (safe to retry elsewhere); any later one raises `Failed` with the HTTP status the
front answers with.
"""

from __future__ import annotations

from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

__all__ = ["Answer", "Failed", "NotSent", "Upstream", "UpstreamError", "forwardable"]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
"""Headers that belong to one connection, not to the message: never forwarded either way."""
REQUEST_ONLY = HOP_BY_HOP | {b"host", b"content-length", b"expect"}
"""Not forwarded to a replica either: the client sets them for the replica's connection."""
NO_BODY = frozenset({204, 304})
POOL_SHARDS = 8
"""httpcore's pool does O(connections^2) work per request (httpcore 1.0.9): at 64 requests in flight
one pool of 64 connections cost the front ~7 ms of CPU per request, 8 pools ~1.9 ms (2 cores)."""

Headers = list[tuple[bytes, bytes]]


def forwardable(headers: Headers, drop: frozenset[bytes] = REQUEST_ONLY) -> Headers:
    """`headers` without `drop` and the ones the Connection header names, names lowercased."""
    named = drop
    for key, value in headers:
        if key.lower() == b"connection":
            named = named | {t.strip().lower() for t in value.split(b",")}
    return [(k.lower(), v) for k, v in headers if k.lower() not in named]


@dataclass(slots=True)
class Answer:
    """A replica's whole answer: status, headers (hop-by-hop removed) and the body bytes as sent."""

    status: int
    headers: Headers
    body: bytes


class UpstreamError(Exception):
    """A replica did not answer."""

    status = 502


class NotSent(UpstreamError):
    """No connection could be made (or none was free): nothing was sent, another replica may answer."""

    status = 503


class Failed(UpstreamError):
    """The request went out but no whole answer came back: not retried."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _why(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


class Upstream:
    """The shared clients (a few, see `POOL_SHARDS`). `aclose()` when the front stops.

    Args:
        timeout: seconds to wait for a replica's answer (read/write); connecting gets `connect_timeout`.
        max_connections: pooled keep-alive connections to all replicas together.
        shards: how many pools share the connections; requests take them in turn.
    """

    def __init__(
        self,
        *,
        timeout: float = 120.0,
        connect_timeout: float = 3.0,
        max_connections: int = 256,
        shards: int = POOL_SHARDS,
    ) -> None:
        per_shard = -(-max_connections // shards)
        tls = httpx.create_ssl_context()  # one for all shards: each costs ~40 ms to build
        self.clients = tuple(
            httpx.AsyncClient(
                timeout=httpx.Timeout(timeout, connect=connect_timeout, pool=connect_timeout),
                limits=httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard),
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),  # remember none
                follow_redirects=False,
                trust_env=False,
                verify=tls,
            )
            for _ in range(shards)
        )
        self._next = 0

    async def send(self, base_url: str, method: str, target: str, headers: Headers, body: bytes) -> Answer:
        """Send `method target` (path and query, as received) to the replica at `base_url`.

        Raises:
            NotSent: nothing reached the replica (connection refused, connect or pool timeout).
            Failed: the replica took the request but gave no whole answer (timeout, disconnect).
        """
        try:
            request = httpx.Request(method, base_url + target, headers=headers, content=body)
        except (httpx.InvalidURL, ValueError) as exc:
            raise Failed(f"cannot forward {target!r}: {exc}", 400) from exc
        try:
            client = self.clients[self._next]
            self._next = (self._next + 1) % len(self.clients)
            response = await client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NotSent(_why(exc)) from exc
        except httpx.TimeoutException as exc:
            raise Failed(_why(exc), 504) from exc
        except httpx.HTTPError as exc:
            raise Failed(_why(exc), 502) from exc
        try:
            chunks = [chunk async for chunk in response.aiter_raw()]
        except httpx.TimeoutException as exc:
            raise Failed(_why(exc), 504) from exc
        except httpx.HTTPError as exc:
            raise Failed(_why(exc), 502) from exc
        finally:
            await response.aclose()
        content = b"".join(chunks)
        headers_out = forwardable(response.headers.raw, HOP_BY_HOP)  # Content-Length stays as sent
        status = response.status_code
        sized = any(k == b"content-length" for k, _ in headers_out)
        if not sized and method != "HEAD" and status not in NO_BODY and status >= 200:
            headers_out.append((b"content-length", str(len(content)).encode()))  # it came chunked
        return Answer(status, headers_out, content)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
