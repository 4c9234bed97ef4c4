"""Front test kit: small real V2 backends and the front itself, served by uvicorn on real sockets.

Every server runs on one event loop in one background thread (`Servers`); the fixture stops them
all and joins the thread, so no test leaves a server behind.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runtime_agent.front.proxy import Front, FrontConfig

TOKEN = "front-admin-token-123"
ADMIN = "/_atom/front"


class Servers:
    """uvicorn servers for ASGI apps on free ports, all on one loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="front-test-servers", daemon=True)
        self._thread.start()
        self._running: dict[str, tuple[uvicorn.Server, Future[None], socket.socket]] = {}

    def serve(self, app: Any, *, lifespan: str = "off") -> str:
        """Serve `app` on a fresh port (listening before this returns); returns its base URL."""
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP (else Nagle and
        # delayed ACKs add ~40 ms to every answer written in two parts)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)  # connections made before uvicorn accepts wait in the backlog
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan=lifespan,  # type: ignore[arg-type]
            server_header=False,
            date_header=False,
            timeout_graceful_shutdown=10,
        )
        server = uvicorn.Server(config)
        future = asyncio.run_coroutine_threadsafe(server.serve(sockets=[sock]), self.loop)
        self._running[url] = (server, future, sock)
        return url

    def call(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the servers' loop."""
        self.loop.call_soon_threadsafe(fn)

    def stop(self, url: str) -> None:
        """Stop one server (it finishes the requests it has) and close its socket."""
        server, future, sock = self._running.pop(url)
        server.should_exit = True
        future.result(timeout=30)
        sock.close()

    def close(self) -> None:
        for url in list(self._running):
            self.stop(url)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        assert not self._thread.is_alive()
        self.loop.close()


class Backend:
    """A tiny V2 model server standing in for one replica of one version.

    `infer` answers `outputs[0].data = [f(x) for x in inputs[0].data]` and names itself in the
    `x-version` / `x-replica` headers. `hold()` makes infer requests wait until `release()`.
    """

    def __init__(
        self,
        servers: Servers,
        version: str,
        name: str,
        *,
        f: Callable[[float], float] = lambda x: 2 * x,
        reorder: bool = False,
        delay: float = 0.0,
    ) -> None:
        self.servers = servers
        self.version = version
        self.name = name
        self.f = f
        self.reorder = reorder
        """Answer the same JSON value with another key order and spacing."""
        self.delay = delay
        """Seconds each infer request takes (a slow replica)."""
        self.hits = 0
        self.seen: list[dict[str, Any]] = []
        self._gate = asyncio.Event()
        self._gate.set()
        self._held = 0
        self._cond = threading.Condition()
        self.url = servers.serve(self.app())

    def hold(self) -> None:
        self.servers.call(self._gate.clear)

    def release(self) -> None:
        self.servers.call(self._gate.set)

    def wait_held(self, n: int, timeout: float = 30) -> None:
        """Block until `n` requests are waiting in `hold()` (call through asyncio.to_thread)."""
        with self._cond:
            assert self._cond.wait_for(lambda: self._held >= n, timeout), f"{self._held} held, not {n}"

    def app(self) -> Starlette:
        async def ready(request: Request) -> Response:
            return JSONResponse({"ready": True}, headers={"x-replica": self.name})

        async def metadata(request: Request) -> Response:
            name = request.path_params["name"]
            return JSONResponse({"name": name, "versions": [self.version]}, headers={"x-replica": self.name})

        async def infer(request: Request) -> Response:
            self.hits += 1
            body = await request.body()
            self.seen.append(
                {
                    "path": request.url.path,
                    "query": request.url.query,
                    "headers": dict(request.headers),
                    "body": body,
                }
            )
            if not self._gate.is_set():
                with self._cond:
                    self._held += 1
                    self._cond.notify_all()
                await self._gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            headers = {"x-version": self.version, "x-replica": self.name}
            split = request.headers.get("inference-header-content-length")
            if split is not None:  # binary tensor extension: a JSON header, then raw bytes
                head, raw = body[: int(split)], body[int(split) :]
                out_head = json.dumps(
                    {"model_name": json.loads(head)["id"], "outputs": [{"name": "echo", "datatype": "BYTES"}]}
                ).encode()
                headers["inference-header-content-length"] = str(len(out_head))
                return Response(out_head + raw[::-1], headers=headers, media_type="application/octet-stream")
            xs = json.loads(body)["inputs"][0]["data"]
            answer = {
                "model_name": request.path_params["name"],
                "outputs": [
                    {"name": "y", "datatype": "FP64", "shape": [len(xs)], "data": [self.f(x) for x in xs]}
                ],
            }
            if self.reorder:
                text = json.dumps(dict(reversed(list(answer.items()))), indent=1)
                return Response(text, headers=headers, media_type="application/json")
            return JSONResponse(answer, headers=headers)

        return Starlette(
            routes=[
                Route("/v2/health/ready", ready),
                Route("/v2/models/{name}", metadata),
                Route("/v2/models/{name}/infer", infer, methods=["POST"]),
            ]
        )


@pytest.fixture
def servers() -> Iterator[Servers]:
    s = Servers()
    try:
        yield s
    finally:
        s.close()


def start_front(servers: Servers, **config: Any) -> tuple[Front, str]:
    """A `Front` served by uvicorn (lifespan on) on a real port; returns it and its base URL."""
    front = Front(FrontConfig(**{"token": TOKEN, **config}))
    return front, servers.serve(front, lifespan="on")


def table(*versions: tuple[str, int, list[str]], mirror: tuple[str, int] | None = None) -> dict[str, Any]:
    """A routing table (wire form) for service `svc`: (version, weight, replica URLs) each."""
    return {
        "service": "svc",
        "versions": [{"version": v, "weight": w, "replicas": r} for v, w, r in versions],
        "mirror": None if mirror is None else {"version": mirror[0], "percent": mirror[1]},
    }


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def infer_body(*xs: float) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "datatype": "FP64", "shape": [len(xs)], "data": list(xs)}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
