"""Dispatch refusals a user can cause, through the real API: one line each, the run failed with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from control.api.app import create_app
from control.settings import Settings
from tests.control.factory import LAMP, SP, define_node, ok


@pytest.fixture
async def dead_ray_api(tmp_path: Path) -> Any:
    settings = Settings(
        home=tmp_path / "home", ray_address="127.0.0.1:1", ray_dashboard_url="http://127.0.0.1:1"
    )
    app: FastAPI = create_app(settings, reconcile=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://control") as api:
            yield api


async def test_an_unreachable_ray_cluster_fails_the_run_with_one_line(
    dead_ray_api: httpx.AsyncClient, tmp_path: Path
) -> None:
    api = dead_ray_api
    d = await define_node(api, data_dir=str(tmp_path))
    await ok(await api.patch(f"{SP}/service-infos/small", json={"siRuntimePattern": "RAY"}))
    resp = await api.post(f"{LAMP}/taskEvent/startNodeTask", json={"taskId": d["node"]["id"]})
    assert resp.status_code == 503, resp.text
    msg = resp.json()["msg"]
    assert "127.0.0.1:1" in msg and "\n" not in msg
    (run,) = (await ok(await api.get("/api/v1/runs")))["items"]
    assert run["state"] == "failed" and run["reason"] == msg and run["adapter"] == "ray"


async def test_a_request_the_local_host_can_never_hold_is_refused(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    d = await define_node(api, data_dir=str(tmp_path))
    await ok(await api.patch(f"{SP}/service-infos/small", json={"siGpu": 4}))
    resp = await api.post(f"{LAMP}/taskEvent/startNodeTask", json={"taskId": d["node"]["id"]})
    assert resp.status_code == 422, resp.text
    msg = resp.json()["msg"]
    assert msg.startswith("needs 4 GPU; this host (local adapter) has 0")
    (run,) = (await ok(await api.get("/api/v1/runs")))["items"]
    assert run["state"] == "failed" and run["reason"] == msg


async def test_a_run_whose_adapter_is_gone_by_its_dispatch_fails_and_holds_no_quota(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    d = await define_node(api, data_dir=str(tmp_path))
    await ok(await api.put(f"{SP}/quota", json={"cpu": 0.01}))  # the run waits for its space's quota
    started = await ok(await api.post(f"{LAMP}/taskEvent/startNodeTask", json={"taskId": d["node"]["id"]}))
    (run_id,) = started["runIds"]
    run = await ok(await api.get(f"/api/v1/runs/{run_id}"))
    assert run["state"] == "pending" and run["reason"].startswith("quota:"), run["reason"]
    orch = app.state.orchestrator
    del orch.adapters["local"]  # e.g. a control restarted with other ATOM_DISPATCH_ADAPTERS
    await ok(await api.put(f"{SP}/quota", json={"cpu": 100}))
    await app.state.reconciler.reconcile_once()  # dispatches the waiting run again
    run = await ok(await api.get(f"/api/v1/runs/{run_id}"))
    assert run["state"] == "failed", run
    assert run["reason"].startswith("dispatch adapter 'local' is not configured in this control"), run
    assert "\n" not in run["reason"]
    quota = await ok(await api.get(f"{SP}/quota"))
    assert quota["reservations"] == [] and quota["used"]["cpu"] == 0
