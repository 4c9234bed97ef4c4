"""`create_app(settings)`: the control HTTP API (FastAPI), its store, dispatcher and reconcile loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request

from control.aio_tasks import cancel_and_wait
from control.api import errors, openapi
from control.api.limits import BodyLimit
from control.api.routes import adapters, agent, code, lamp, render, resources, runs, service_keys, services
from control.api.routes import artifacts as artifact_routes
from control.api.routes import attempts as attempt_routes
from control.api.routes import audit as audit_routes
from control.api.routes import exam_runs as exam_run_routes
from control.api.routes import quotas as quota_routes
from control.api.routes import schedules as schedule_routes
from control.api.routes import traffic as traffic_routes
from control.api.routes import trials as trials_routes
from control.api.routes import users as user_routes
from control.dispatch.registry import build_adapters
from control.orchestrator import Orchestrator
from control.reconcile import Reconciler
from control.schemas._base import JsonLimit
from control.secrets import Vault
from control.settings import Settings
from control.store.engine import Store

logger = logging.getLogger(__name__)


async def healthz(request: Request) -> dict[str, Any]:
    """Control is up; which store dialect it uses, and its version. (A module-level function: a
    route closing over its app would be kept alive by FastAPI's caches after the app is gone.)"""
    orch: Orchestrator = request.app.state.orchestrator
    return {"ok": True, "store": orch.store.engine.url.get_backend_name(), "version": request.app.version}


def create_app(settings: Settings | None = None, *, reconcile: bool = True) -> FastAPI:
    """Build the app. The store is opened (and migrated) here; the reconcile loop runs in lifespan.

    Args:
        settings: control settings; None reads `ATOM_*` from the environment.
        reconcile: run the reconcile loop while the app is up (tests may drive it by hand).
    """
    settings = settings or Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    store = Store(settings.database_url)
    vault = Vault.from_home(
        settings.home, settings.secret_key.get_secret_value() if settings.secret_key else None
    )
    orch = Orchestrator(settings, store, vault, build_adapters(settings))
    reconciler = Reconciler(
        orch, interval=settings.reconcile_interval, heartbeat_timeout=settings.heartbeat_timeout
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(reconciler.run_forever()) if reconcile else None
        try:
            yield
        finally:
            if task is not None:
                await cancel_and_wait(task)
            await reconciler.aclose()
            await orch.aclose()
            store.dispose()

    app = FastAPI(
        title="Atom control",
        version="0.1.0",
        description="Define operators, data and nodes; start runs; follow them; serve their models.",
        lifespan=lifespan,
    )
    app.state.orchestrator = orch
    app.state.reconciler = reconciler
    app.state.settings = settings
    JsonLimit.set(settings.max_json_field_bytes)
    errors.install(app)
    openapi.install(app)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        code_max_bytes=settings.code_max_bytes,
    )

    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"])
    # routes are matched in order: the agents' calls, the most frequent by far, are looked at first
    for module in (agent, resources, lamp, runs, services, code, adapters, render, service_keys):
        app.include_router(module.router)
    app.include_router(user_routes.router)
    app.include_router(audit_routes.router)
    app.include_router(quota_routes.router)
    app.include_router(exam_run_routes.router)
    app.include_router(schedule_routes.router)
    app.include_router(attempt_routes.router)
    app.include_router(trials_routes.router)
    app.include_router(artifact_routes.router)
    app.include_router(traffic_routes.router)
    return app
