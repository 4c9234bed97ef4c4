"""The front's admin API, under `/_atom/front/` (no Open Inference Protocol path starts so).

- `GET routes`: the routing table in force (404 before the first one).
- `PUT routes`: a new table; `Authorization: Bearer <ATOM_FRONT_TOKEN>` (401 without it, 403 with
  another token or when the front has none). 422 `{"msg": "..."}` names the field of a bad table
  and changes nothing; on 200 the table is already in the state file and routing by it.
- `GET stats`: per version and replica: requests, errors, inFlight, p50Ms/p99Ms, rps; the mirror's record.
- `GET healthz`: the front is up; whether it has a table to route by.
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from runtime_agent.front.routes import RouteError, parse_table

if TYPE_CHECKING:
    from runtime_agent.front.proxy import Front, Receive, Scope, Send

__all__ = ["ADMIN_PREFIX", "MAX_TABLE_BYTES", "Admin"]

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/_atom/front/"
"""The admin API's paths; the Open Inference Protocol's all start with /v2."""

MAX_TABLE_BYTES = 1 << 20


def _msg(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"msg": message}, status_code=status, headers=headers or None)


class Admin:
    """Answers the admin paths for one `Front`."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.prefix = ADMIN_PREFIX
        self._routes = {
            ("GET", "routes"): self.get_routes,
            ("PUT", "routes"): self.put_routes,
            ("GET", "stats"): self.get_stats,
            ("GET", "healthz"): self.get_healthz,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        name = scope["path"][len(self.prefix) :].strip("/")
        handler = self._routes.get((request.method, name))
        if handler is not None:
            response = await handler(request)
        elif any(n == name for _, n in self._routes):
            allowed = ", ".join(m for m, n in self._routes if n == name)
            response = _msg(405, f"{request.method} is not allowed on {scope['path']}", allow=allowed)
        else:
            known = ", ".join(sorted({self.prefix + n for _, n in self._routes}))
            response = _msg(404, f"no admin path {scope['path']} (paths: {known})")
        await response(scope, receive, send)

    def _refused(self, request: Request) -> Response | None:
        token = self.front.config.token
        if not token:
            return _msg(403, "admin writes are off: the front was started without ATOM_FRONT_TOKEN")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            challenge = {"WWW-Authenticate": "Bearer"}
            return _msg(401, "admin writes need Authorization: Bearer <token>", **challenge)
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            return _msg(403, "the admin token is not valid")
        return None

    async def get_routes(self, request: Request) -> Response:
        table = self.front.router.table
        if table is None:
            return _msg(404, "no routing table yet")
        return JSONResponse(table.wire())

    async def put_routes(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        body = await request.body()
        if len(body) > MAX_TABLE_BYTES:
            return _msg(413, f"a routing table is at most {MAX_TABLE_BYTES} bytes")
        try:
            table = parse_table(body)
        except RouteError as exc:
            return _msg(422, str(exc))
        wanted = self.front.config.service
        if wanted is not None and table.service != wanted:
            return _msg(422, f"service: this front serves {wanted!r}, not {table.service!r}")
        try:
            await self.front.put_table(table)
        except OSError as exc:
            logger.error("front: cannot keep the routing table: %s", exc)
            return _msg(500, f"the routing table could not be saved, nothing changed: {exc}")
        return JSONResponse(table.wire())

    async def get_stats(self, request: Request) -> Response:
        return JSONResponse(self.front.stats())

    async def get_healthz(self, request: Request) -> Response:
        body: dict[str, Any] = {
            "live": True,
            "routable": self.front.router.plan is not None,
            "service": self.front.router.table.service if self.front.router.table else None,
            "epoch": self.front.router.epoch,
        }
        return JSONResponse(body)
