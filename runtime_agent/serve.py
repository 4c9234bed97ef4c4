"""Inference server (`atom-runtime serve`): one model behind the Open Inference Protocol (V2) over HTTP.

Routes: `GET /v2`, `/v2/health/live`, `/v2/health/ready`, `/v2/models/{name}` (metadata),
`/v2/models/{name}/ready`, `POST /v2/models/{name}/infer`, and the same under
`/v2/models/{name}/versions/{version}/...`. Readiness turns true only once the model is loaded.
Errors are `{"error": "..."}`: 400 for a bad request (including inputs the model refuses),
404 for an unknown model or version, 503 while the model is loading, 500 for a model failure.
A service started by control admits callers by its key or a user token (`runtime_agent.serve_auth`:
401 / 403 otherwise); the health routes stay open.

Tensor mapping: see `runtime_agent.v2` (one [N] tensor per column, or one [N, K] tensor with
`parameters.columns`; one output tensor per output column).

Modes: `--service-id N` fetches the ServeSpec from control (ATOM_CONTROL_URL +
ATOM_SERVICE_TOKEN), fetches the code of the operator that trained the model (its codeMode, into
ATOM_CODE_CACHE), downloads the model through its connection and loads `servingObject`;
`--model PATH --operator module:Class --name NAME` serves a local directory or model.tar.gz.
Both accept new-API `ReasoningOperator`s and original-runtime `ReasoningOperatorApi` classes.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from runtime_agent._aio import call
from runtime_agent.compat import LegacyReasoningOperator, adapt, as_frame
from runtime_agent.errors import ModelError, OperatorLoadError, describe_exception
from runtime_agent.loader import instantiate, load_ref
from runtime_agent.v2 import BadRequest, InferenceRequest, request_frame, response_outputs

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx

    from runtime_agent.serve_auth import Gate
    from runtime_agent.settings import AgentSettings

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A model ready to answer: its V2 name and version, and the reasoning operator that predicts."""

    name: str
    version: str
    operator: Any
    aliases: tuple[str, ...] = ()
    workdir: Path | None = None
    """A temp dir the loader unpacked the model into; removed by `ModelServer.aclose`."""


Loader = Callable[[], Awaitable[LoadedModel]]


class ModelServer:
    """Holds one model; loads it once (`load`) and answers predictions.

    Args:
        loader: builds the `LoadedModel` (downloads, unpacks, imports, calls `load`).
        name: the V2 model name when known before loading (else the loader's).
    """

    def __init__(self, loader: Loader, *, name: str | None = None) -> None:
        self._loader = loader
        self.name = name
        self.model: LoadedModel | None = None
        self.error: str | None = None
        self._lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        """True once the model has loaded."""
        return self.model is not None

    async def load(self) -> LoadedModel:
        """Load the model (once); a failure is kept in `error` and raised."""
        async with self._lock:
            if self.model is None:
                try:
                    self.model = await self._loader()
                except Exception as exc:
                    self.error = (
                        str(exc)
                        if isinstance(exc, ModelError | OperatorLoadError)
                        else describe_exception(exc)
                    )
                    logger.error("model failed to load: %s", self.error, exc_info=exc)
                    raise
                self.name = self.name or self.model.name
                logger.info("model %s version %s ready", self.model.name, self.model.version)
            return self.model

    async def aclose(self) -> None:
        """Remove the model's temp files (the server is shutting down)."""
        if self.model is not None and self.model.workdir is not None:
            await asyncio.to_thread(shutil.rmtree, self.model.workdir, True)

    def knows(self, name: str) -> bool:
        """True when `name` names this server's model."""
        model = self.model
        return name == self.name or (model is not None and (name == model.name or name in model.aliases))


def _metadata_tensors(model: LoadedModel) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    sig_fn = getattr(model.operator, "signature", None)
    sig = sig_fn() if callable(sig_fn) else None
    sig = sig or {}
    return list(sig.get("inputs", [])), list(sig.get("outputs", []))


# -- the app ----------------------------------------------------------------------------------


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


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

    app = FastAPI(title="Atom inference (Open Inference Protocol V2)", lifespan=lifespan)

    if gate is not None:

        @app.middleware("http")
        async def admit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            refused = await gate.admit(request)
            return refused if refused is not None else await call_next(request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(400, f"invalid inference request: {where}: {first.get('msg', 'invalid')}")

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
        return {"name": "atom-runtime", "version": "2", "extensions": []}

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
        inputs, outputs = _metadata_tensors(found)
        return {
            "name": found.name,
            "versions": [found.version],
            "platform": f"atom-runtime/{type(found.operator).__name__}",
            "inputs": inputs,
            "outputs": outputs,
        }

    async def model_ready(name: str, version: str | None) -> dict[str, Any] | JSONResponse:
        found = find(name, version)
        if isinstance(found, JSONResponse):
            return found
        return {"name": found.name, "ready": True}

    async def infer(name: str, version: str | None, body: InferenceRequest) -> dict[str, Any] | JSONResponse:
        found = find(name, version)
        if isinstance(found, JSONResponse):
            return found
        inputs, _ = _metadata_tensors(found)
        try:
            df = request_frame(body, [str(t.get("name")) for t in inputs])
            out = await call(found.operator.predict, df)
            frame = as_frame(out)
            wanted = [o.name for o in body.outputs] if body.outputs else None
            outputs = response_outputs(frame, wanted)
        except BadRequest as exc:
            return _error(400, str(exc))
        except (ValueError, KeyError, TypeError) as exc:
            return _error(400, f"the model refused the inputs: {describe_exception(exc)}")
        except Exception as exc:
            logger.exception("predict failed")
            return _error(500, f"the model failed: {describe_exception(exc)}")
        return {
            "model_name": found.name,
            "model_version": found.version,
            "id": body.id or str(uuid.uuid4()),
            "outputs": outputs,
        }

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

    @app.post("/v2/models/{name}/infer", response_model=None)
    async def post_infer(name: str, body: InferenceRequest) -> dict[str, Any] | JSONResponse:
        return await infer(name, None, body)

    @app.post("/v2/models/{name}/versions/{version}/infer", response_model=None)
    async def post_version_infer(
        name: str, version: str, body: InferenceRequest
    ) -> dict[str, Any] | JSONResponse:
        return await infer(name, version, body)

    app.state.server = server
    return app


# -- loaders ----------------------------------------------------------------------------------


async def build_operator(
    ref: str,
    model_dir: Path,
    *,
    operator_conf: Mapping[str, Any] | None = None,
    model_conf: Mapping[str, Any] | None = None,
) -> Any:
    """Import `module:Class`, build it (wrapping original-runtime classes) and `load(model_dir)`.

    Raises:
        OperatorLoadError: the serving object cannot be imported or built.
    """
    obj = load_ref(ref)
    module, _, name = ref.partition(":")
    op = adapt(instantiate(obj, module_name=module, execute_object=name))
    if isinstance(op, LegacyReasoningOperator):
        op.configure(operator_conf or {}, model_conf or {})
    if not callable(getattr(op, "predict", None)):
        raise OperatorLoadError(f"serving object {ref!r} has no predict(df) method: use a ReasoningOperator")
    if callable(getattr(op, "load", None)):
        await call(op.load, model_dir)
    return op


def local_loader(
    model: Path,
    operator: str,
    *,
    name: str,
    version: str = "1",
    model_conf: Mapping[str, Any] | None = None,
    operator_conf: Mapping[str, Any] | None = None,
) -> Loader:
    """A loader for `serve --model PATH --operator module:Class --name NAME`."""

    async def load() -> LoadedModel:
        from runtime_agent import models  # light

        workdir = Path(tempfile.mkdtemp(prefix="atom-serve-"))
        model_dir = await asyncio.to_thread(models.open_local, model, workdir / "model")
        op = await build_operator(operator, model_dir, operator_conf=operator_conf, model_conf=model_conf)
        return LoadedModel(name=name, version=version, operator=op, workdir=workdir)

    return load


def control_loader(
    settings: AgentSettings, service_id: int, *, transport: httpx.AsyncBaseTransport | None = None
) -> Loader:
    """A loader for `serve --service-id N`: ServeSpec from control, model through its connection.

    Args:
        settings: ATOM_CONTROL_URL and ATOM_SERVICE_TOKEN come from here.
        service_id: the service to serve.
        transport: an httpx transport for the control client (tests).
    """

    async def load() -> LoadedModel:
        from control.client import AsyncControlClient  # light: httpx + schemas
        from runtime_agent import models
        from runtime_agent.code import CodeAuth, fetch_operator_code
        from runtime_agent.logs import add_secret
        from runtime_agent.sources import Connections

        if not settings.control_url:
            raise ModelError("serve --service-id needs ATOM_CONTROL_URL (and ATOM_SERVICE_TOKEN)")
        token = settings.service_token.get_secret_value() if settings.service_token else None
        add_secret(token)
        async with AsyncControlClient(settings.control_url, token=token, transport=transport) as client:
            spec = await client.serve_spec(service_id)
        logger.info(
            "service %s: model %s version %s from %s, served by %s",
            spec.service_name,
            spec.model_name,
            spec.model_version,
            spec.model_address,
            spec.serving_object,
        )
        auth = CodeAuth(token, service_id=service_id)  # the serving object may live only in that code
        await fetch_operator_code(spec, settings, auth=auth, transport=transport)
        workdir = Path(tempfile.mkdtemp(prefix=f"atom-serve-{service_id}-"))
        connections = Connections()
        try:
            model_dir = await models.download(
                spec.model_address,
                connection=spec.connection,
                connections=connections,
                dest=workdir / "model",
                default_base=(settings.data_dir or workdir) / "models",
            )
        finally:
            await connections.aclose()
        op = await build_operator(spec.serving_object, model_dir, model_conf=spec.model_conf)
        return LoadedModel(
            name=spec.model_name,
            version=spec.model_version,
            operator=op,
            aliases=(spec.service_name,),
            workdir=workdir,
        )

    return load


async def serve(app: FastAPI, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the app under uvicorn until SIGTERM / SIGINT."""
    import uvicorn  # deferred: only the serve command needs it

    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="on")
    await uvicorn.Server(config).serve()
