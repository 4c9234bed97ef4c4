"""The model server's HTTP app: the Open Inference Protocol (V2) routes over one `ModelServer`.

Routes: `GET /v2`, `/v2/health/live`, `/v2/health/ready`, `/v2/models/{name}` (metadata),
`/v2/models/{name}/ready`, `POST /v2/models/{name}/infer`, and the same under
`/v2/models/{name}/versions/{version}/...`. Every answer names the model by the name the request
used (the model's own name, or the service name it is served under). Errors are
`{"error": "..."}`: 400 for a bad request (including inputs the model refuses), 404 for an
unknown model or version, 503 while the model is loading, 500 for a model failure.

Metadata: when the model declares K >= 2 numeric inputs, `inputs` is the one `[-1, K]` tensor a
generic OIP client builds (`input`, with `parameters.columns` naming the K columns in order)
and `parameters.column_inputs` lists the same inputs as one `[-1]` tensor per column (the other
form a request may take); otherwise `inputs` lists what the model declares.
"""

from __future__ import annotations

import asyncio
import logging
import re
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from runtime_agent.errors import describe_exception
from runtime_agent.serve_infer import Answer, error

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from runtime_agent.serve import LoadedModel, ModelServer
    from runtime_agent.serve_auth import Gate

logger = logging.getLogger(__name__)

_INFER = re.compile(r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class ServeApp(FastAPI):
    """FastAPI for every route, but `POST .../infer` is answered before its middleware and routing.

    The infer path is the hot one: FastAPI's middleware stack, route matching and request objects
    cost about as much as the rest of a one-row request. Its other methods still reach the
    registered routes (405).
    """

    fast_infer: Callable[[Scope, Receive, Send, str, str | None], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and self.fast_infer is not None:
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            match = _INFER.fullmatch(path[len(root) :] if root and path.startswith(root) else path)
            if match is not None:
                await self.fast_infer(scope, receive, send, match["name"], match["version"])
                return
        await super().__call__(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("the client went away before sending the whole request")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, answer: Answer) -> None:
    media = b"application/octet-stream" if answer.headers else b"application/json"
    headers = [(b"content-type", media), (b"content-length", str(len(answer.body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (answer.headers or {}).items()]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


class _Admit:
    """ASGI middleware: the gate admits or refuses each HTTP request before any route sees it."""

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = await self.gate.admit(Request(scope))
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(server: ModelServer, *, load_on_startup: bool = True, gate: Gate | None = None) -> FastAPI:
    """The V2 FastAPI app for one `ModelServer`.

    Args:
        server: the model holder.
        gate: who may call (`runtime_agent.serve_auth`); None answers everyone (a local `--model`).
        load_on_startup: start loading in the background when the app starts (lifespan); tests
            driving the app through `httpx.ASGITransport` call `await server.load()` themselves.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        if load_on_startup and not server.ready:
            task = asyncio.create_task(server.load())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # error kept on server
        yield
        if task is not None and not task.done():
            task.cancel()
        await server.aclose()

    app = ServeApp(title="Atom inference (Open Inference Protocol V2)", lifespan=lifespan)
    if gate is not None:
        app.add_middleware(_Admit, gate=gate)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    def find(name: str, version: str | None = None) -> LoadedModel | JSONResponse:
        if not server.ready:
            if server.name is not None and name != server.name:
                return _error(404, f"unknown model {name!r}: this server serves {server.name!r}")
            why = f"failed to load: {server.error}" if server.error else "is loading"
            return _error(503, f"model {name!r} {why}")
        model = server.model
        assert model is not None
        if not server.knows(name):
            return _error(404, f"unknown model {name!r}: this server serves {model.name!r}")
        if version is not None and version != model.version:
            return _error(
                404, f"model {name!r} has no version {version!r}: it serves version {model.version!r}"
            )
        return model

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "atom-runtime", "version": "2", "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", response_model=None)
    async def ready() -> dict[str, bool] | JSONResponse:
        if server.ready:
            return {"ready": True}
        return JSONResponse({"ready": False, "error": server.error or "model is loading"}, status_code=503)

    async def metadata(name: str, version: str | None) -> dict[str, Any] | JSONResponse:
        found = find(name, version)
        if isinstance(found, JSONResponse):
            return found
        engine = server.engine
        assert engine is not None
        inputs, parameters = engine.metadata_inputs()
        body: dict[str, Any] = {
            "name": name,
            "versions": [found.version],
            "platform": f"atom-runtime/{type(found.operator).__name__}",
            "inputs": inputs,
            "outputs": engine.outputs,
        }
        if parameters:
            body["parameters"] = parameters
        return body

    async def model_ready(name: str, version: str | None) -> dict[str, Any] | JSONResponse:
        found = find(name, version)
        if isinstance(found, JSONResponse):
            return found
        return {"name": name, "ready": True}

    def found_or_error(name: str, version: str | None) -> LoadedModel | Answer:
        found = find(name, version)
        if isinstance(found, JSONResponse):
            return Answer(found.status_code, bytes(found.body))
        return found

    async def fast_infer(scope: Scope, receive: Receive, send: Send, name: str, version: str | None) -> None:
        if gate is not None:
            refused = await gate.admit(Request(scope))
            if refused is not None:
                await refused(scope, receive, send)
                return
        found = found_or_error(name, version)
        if isinstance(found, Answer):
            await _send(send, found)
            return
        engine = server.engine
        assert engine is not None
        header_length = None
        for key, value in scope["headers"]:
            if key == b"inference-header-content-length":
                header_length = value.decode("latin-1")
        try:
            answer = await engine.answer(
                lambda: _read_body(receive), header_length, name=name, version=found.version
            )
        except ConnectionResetError:
            return  # nobody to answer
        except Exception as exc:  # what ServerErrorMiddleware would do, as the usual JSON error
            logger.exception("infer failed")
            answer = error(500, f"the server failed: {describe_exception(exc)}")
        await _send(send, answer)

    app.fast_infer = fast_infer

    async def infer(request: Request) -> Response:  # reached only for other methods: 405 before this
        raise StarletteHTTPException(405)

    @app.get("/v2/models/{name}", response_model=None)
    async def get_metadata(name: str) -> dict[str, Any] | JSONResponse:
        return await metadata(name, None)

    @app.get("/v2/models/{name}/versions/{version}", response_model=None)
    async def get_version_metadata(name: str, version: str) -> dict[str, Any] | JSONResponse:
        return await metadata(name, version)

    @app.get("/v2/models/{name}/ready", response_model=None)
    async def get_model_ready(name: str) -> dict[str, Any] | JSONResponse:
        return await model_ready(name, None)

    @app.get("/v2/models/{name}/versions/{version}/ready", response_model=None)
    async def get_version_ready(name: str, version: str) -> dict[str, Any] | JSONResponse:
        return await model_ready(name, version)

    # POST is answered by `fast_infer`; the routes make other methods a 405, as for any route
    app.add_route("/v2/models/{name}/infer", infer, methods=["POST"])
    app.add_route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"])

    app.state.server = server
    return app
