"""The front's ASGI app: one stable endpoint for a service name, forwarding to its versions' replicas.

Paths under `ADMIN_PREFIX` are the admin API (`runtime_agent.front.admin`). Every other request is
forwarded unchanged (method, path, query, body bytes, headers but hop-by-hop ones) to one replica of
one version: the version by smooth weighted round-robin, the replica by least outstanding requests.
A connection refused is retried once on another replica of the same version; when none answers the
caller gets 503 `{"error": "service S: no replica of version V answered (...)"}`. A share of the
inference requests (`POST .../infer`) may be copied to a mirror version (`runtime_agent.front.mirror`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runtime_agent.front.admin import ADMIN_PREFIX, Admin
from runtime_agent.front.mirror import Mirror
from runtime_agent.front.router import Router
from runtime_agent.front.routes import describe
from runtime_agent.front.state import StateError, load_table, save_table
from runtime_agent.front.upstream import Answer, Failed, NotSent, Upstream, forwardable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping
    from pathlib import Path

    from runtime_agent.front.balance import Replica, VersionPool
    from runtime_agent.front.router import Plan
    from runtime_agent.front.routes import RoutingTable
    from runtime_agent.front.upstream import Headers

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

__all__ = ["ADMIN_PREFIX", "Front", "FrontConfig"]

logger = logging.getLogger(__name__)


@dataclass
class FrontConfig:
    """How one front runs (built by `atom-runtime front` from its flags and ATOM_FRONT_TOKEN)."""

    state_path: Path | None = None
    """Where the accepted routing table is kept; None keeps it in memory only (tests)."""
    token: str | None = field(default=None, repr=False)
    """The admin token for `PUT routes`; None refuses every admin write."""
    service: str | None = None
    """When set, tables for another service name are refused."""
    timeout: float = 120.0
    """Seconds a replica may take to answer."""
    connect_timeout: float = 3.0
    max_connections: int = 256
    """Pooled keep-alive connections to the replicas, all together."""
    mirror_limit: int = 32
    """Mirror copies in flight at most; more are dropped and counted."""


def _error(status: int, message: str) -> Answer:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return Answer(status, headers, body)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None when the caller went away first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # http.disconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _target(scope: Scope) -> str:
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope["path"]
    query: bytes = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


class Front:
    """The router, the shared client, the mirror and the state file, behind one ASGI callable.

    Uvicorn runs it with `lifespan="on"`: startup loads the state file, shutdown closes the client.
    Tests driving it through `httpx.ASGITransport` call `astart()` / `aclose()` themselves.
    """

    def __init__(self, config: FrontConfig) -> None:
        self.config = config
        self.router = Router()
        self.upstream = Upstream(
            timeout=config.timeout,
            connect_timeout=config.connect_timeout,
            max_connections=config.max_connections,
        )
        self.mirror = Mirror(self.upstream, limit=config.mirror_limit)
        self.unrouted = 0
        """Requests answered 503 because no routing table was loaded yet."""
        self.started = time.monotonic()
        self._switch = asyncio.Lock()
        self._admin = Admin(self)

    # -- life -----------------------------------------------------------------------------------

    async def astart(self) -> None:
        """Load the routing table from the state file, if there is one (StateError when it is bad)."""
        if self.config.state_path is not None:
            table = await asyncio.to_thread(load_table, self.config.state_path)
            wanted = self.config.service
            if table is not None and wanted is not None and table.service != wanted:
                raise StateError(
                    f"the state file {self.config.state_path} routes {table.service!r}, not {wanted!r}"
                )
            if table is not None:
                self._apply(table, source=f"the state file {self.config.state_path}")

    async def aclose(self) -> None:
        await self.mirror.aclose()
        await self.upstream.aclose()

    # -- table switches -------------------------------------------------------------------------

    async def put_table(self, table: RoutingTable) -> Plan:
        """Keep `table` in the state file (atomically), then route by it. One switch at a time."""
        async with self._switch:
            if self.config.state_path is not None:
                await asyncio.to_thread(save_table, self.config.state_path, table)
            return self._apply(table, source="PUT routes")

    def _apply(self, table: RoutingTable, *, source: str) -> Plan:
        plan = self.router.apply(table)
        mirror = table.mirror
        self.mirror.configure(mirror.version if mirror else None, mirror.percent if mirror else 0)
        logger.info(
            "front %s: routing table %d from %s: %s", table.service, plan.epoch, source, describe(table)
        )
        return plan

    def stats(self) -> dict[str, Any]:
        """The `GET stats` body."""
        return {
            **self.router.view(),
            "uptimeS": round(time.monotonic() - self.started, 1),
            "unrouted": self.unrouted,
            "mirror": self.mirror.view(),
        }

    # -- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if scope["path"].startswith(ADMIN_PREFIX):
                await self._admin(scope, receive, send)
            else:
                await self._forward(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # websockets: not served (uvicorn closes the connection)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.astart()
                except Exception as exc:
                    logger.error("front failed to start: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if body is None:
            return
        plan = self.router.plan
        if plan is None:
            self.unrouted += 1
            answer = _error(503, "front: no routing table yet")
        else:
            method: str = scope["method"]
            target = _target(scope)
            headers = forwardable(scope["headers"])
            pool = plan.choose()
            primary: asyncio.Future[Answer | None] | None = None
            if method == "POST" and scope["path"].endswith("/infer"):
                candidate = plan.mirror_to(pool)
                if candidate is not None:
                    primary = asyncio.get_running_loop().create_future()
                    self.mirror.copy(candidate, method, target, headers, body, primary)
            got: Answer | None = None
            try:
                answer = got = await self._answer(plan, pool, method, target, headers, body)
            finally:
                if primary is not None and not primary.done():
                    primary.set_result(got)
        await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def _answer(
        self, plan: Plan, pool: VersionPool, method: str, target: str, headers: Headers, body: bytes
    ) -> Answer:
        """Send to the least busy replica of `pool`; on a refused connection, once more to another."""
        service, version = plan.table.service, pool.version
        tried: list[Replica] = []
        refused: list[str] = []
        failed = True
        v_started = pool.counters.start()
        try:
            for _ in range(2):
                replica = pool.choose(exclude=tried)
                if replica is None:
                    break
                tried.append(replica)
                r_started = replica.counters.start()
                answer: Answer | None = None
                try:
                    answer = await self.upstream.send(replica.url, method, target, headers, body)
                except NotSent as exc:
                    replica.refused()
                    refused.append(f"{replica.url}: {exc}")
                    continue
                except Failed as exc:
                    return _error(exc.status, f"service {service}: version {version} at {replica.url}: {exc}")
                finally:
                    replica.counters.finish(r_started, error=answer is None or answer.status >= 500)
                failed = answer.status >= 500
                return answer
            why = "; ".join(refused) or "it has no replicas"
            return _error(503, f"service {service}: no replica of version {version} answered ({why})")
        finally:
            pool.counters.finish(v_started, error=failed)
