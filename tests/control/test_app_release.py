"""An app whose lifespan ended can be freed: nothing global (FastAPI's dependency caches among
them) keeps it, its store and its orchestrator alive. Tests and embedders create many apps."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import httpx
from fastapi import FastAPI

from control.api.app import create_app
from control.settings import Settings


def test_an_app_is_freed_once_its_lifespan_ended(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path), reconcile=False)

    async def use(app: FastAPI) -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://control") as api:
                assert (await api.get("/healthz")).json()["store"] == "sqlite"
                assert (await api.get("/api/v1/spaces")).status_code == 200
                bad = await api.post("/api/v1/agent/runs/1/state", json={"state": "running"})
                assert bad.status_code == 401  # the agent routes' dependencies were built too

    asyncio.run(use(app))
    app_ref, orch_ref = weakref.ref(app), weakref.ref(app.state.orchestrator)
    del app
    gc.collect()
    assert app_ref() is None
    assert orch_ref() is None
