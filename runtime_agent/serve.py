"""Inference server (`atom-runtime serve`): one model behind the Open Inference Protocol (V2) over HTTP.

The routes, errors and metadata are in `runtime_agent.serve_app`; the infer path (decoding,
adaptive batching, the binary tensor extension) in `runtime_agent.serve_infer`. Readiness turns
true only once the model is loaded (and pandas, which every predict needs, is imported).
A service started by control admits callers by its key or a user token (`runtime_agent.serve_auth`:
401 / 403 otherwise); the health routes stay open.

Tensor mapping: see `runtime_agent.v2` (one [N, K] tensor, or one [N] tensor per column; one
output tensor per output column).

Batching (modelConf, per service): `maxBatchSize` (default 32) is the most requests one predict
call takes (their rows concatenated), `maxBatchWaitMs` (default 2) the longest a request waits
for others to share it; 1 / 0 turns batching off (`runtime_agent.serve_batching`).

Modes: `--service-id N` fetches the ServeSpec from control (ATOM_CONTROL_URL +
ATOM_SERVICE_TOKEN), fetches the code of the operator that trained the model (its codeMode, into
ATOM_CODE_CACHE), downloads the model through its connection and loads `servingObject`;
`--model PATH --operator module:Class --name NAME` serves a local directory or model.tar.gz.
Both accept new-API `ReasoningOperator`s and original-runtime `ReasoningOperatorApi` classes.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime_agent._aio import call, in_daemon_thread
from runtime_agent.compat import LegacyReasoningOperator, adapt
from runtime_agent.errors import ModelError, OperatorLoadError, describe_exception
from runtime_agent.loader import instantiate, load_ref
from runtime_agent.serve_app import create_app
from runtime_agent.serve_batching import BatchConfig
from runtime_agent.serve_infer import Engine

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI

    from runtime_agent.settings import AgentSettings

__all__ = ["LoadedModel", "ModelServer", "control_loader", "create_app", "local_loader", "serve"]

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
    model_conf: Mapping[str, Any] = field(default_factory=dict)
    """The model's modelConf: the batching knobs `maxBatchSize` and `maxBatchWaitMs` are read here."""


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
        self.engine: Engine | None = None
        """Answers infer requests once the model has loaded (decoding, batching, encoding)."""
        self.error: str | None = None
        self._lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        """True once the model has loaded."""
        return self.engine is not None

    async def load(self) -> LoadedModel:
        """Load the model (once); a failure is kept in `error` and raised."""
        async with self._lock:
            if self.model is None:
                loaded: list[LoadedModel] = []
                try:
                    model, _ = await asyncio.gather(self._load_into(loaded), in_daemon_thread(_warm_up))
                    config = BatchConfig.from_model_conf(model.model_conf)
                    engine = Engine(model.operator, config)
                except Exception as exc:
                    for partial in loaded:  # loaded, but not servable: its files go
                        if partial.workdir is not None:
                            await asyncio.to_thread(shutil.rmtree, partial.workdir, True)
                    self.error = (
                        str(exc)
                        if isinstance(exc, ModelError | OperatorLoadError)
                        else describe_exception(exc)
                    )
                    logger.error("model failed to load: %s", self.error, exc_info=exc)
                    raise
                self.model, self.engine = model, engine
                self.name = self.name or model.name
                logger.info(
                    "model %s version %s ready (batches of up to %d requests, %g ms wait)",
                    model.name,
                    model.version,
                    config.max_size if config.enabled else 1,
                    config.max_wait_s * 1000 if config.enabled else 0,
                )
            return self.model

    async def _load_into(self, loaded: list[LoadedModel]) -> LoadedModel:
        model = await self._loader()
        loaded.append(model)
        return model

    async def aclose(self) -> None:
        """Stop batching and remove the model's temp files (the server is shutting down)."""
        if self.engine is not None:
            await self.engine.aclose()
        if self.model is not None and self.model.workdir is not None:
            await asyncio.to_thread(shutil.rmtree, self.model.workdir, True)

    def knows(self, name: str) -> bool:
        """True when `name` names this server's model."""
        model = self.model
        return name == self.name or (model is not None and (name == model.name or name in model.aliases))


def _warm_up() -> None:
    """Import what every predict needs (pandas) while the model loads, so no request waits for it."""
    importlib.import_module("pandas")


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
        return LoadedModel(
            name=name, version=version, operator=op, workdir=workdir, model_conf=dict(model_conf or {})
        )

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
            model_conf=dict(spec.model_conf or {}),
        )

    return load


async def serve(app: FastAPI, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the app under uvicorn until SIGTERM / SIGINT."""
    import uvicorn  # deferred: only the serve command needs it

    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="on", server_header=False
    )
    await uvicorn.Server(config).serve()
