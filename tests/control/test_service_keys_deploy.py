"""Keys and public access as a run's service is planned and approved (TOUCH_DEPLOY)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from control import launch
from control import schemas as s
from control.api.app import create_app
from control.secrets import token_hash
from control.settings import Settings
from control.store import models as m
from tests.control.factory import LAMP, define_node, ok

AG = "/api/v1/agent/runs"


async def finished_service(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path, model_conf: dict[str, object] | None = None
) -> dict[str, object]:
    """A TOUCH_DEPLOY run that registered a model version and finished: its service's view."""
    d = await define_node(api, data_dir=str(tmp_path), deploy="TOUCH_DEPLOY")
    if model_conf is not None:
        patch = {"modelConf": model_conf}
        await ok(await api.patch("/api/v1/spaces/default/operators/tabular", json=patch))
    run, token = await app.state.orchestrator.db(
        lambda ses: launch.start_node(
            session=ses, event=s.TaskEvent(task_id=d["node"]["id"]), adapter="local"
        )
    )
    auth = {"Authorization": f"Bearer {token}"}
    await ok(await api.post(f"{AG}/{run.id}/state", json={"state": "running"}, headers=auth))
    version = {"modelAddress": "file:///m.tar.gz", "servingObject": "runtime_agent.examples.train_example:X"}
    await ok(await api.post(f"{AG}/{run.id}/model-version", headers=auth, json=version))
    finish = {"taskId": d["node"]["id"], "runParameter": {"runId": str(run.id)}}
    result = await ok(await api.post(f"{LAMP}/taskEvent/runningAutoFinish", headers=auth, json=finish))
    view: dict[str, object] = await ok(await api.get(f"/api/v1/services/{result['serviceId']}"))
    return view


async def test_a_planned_service_has_a_key_and_approving_it_shows_a_new_one_once(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    svc = await finished_service(app, api, tmp_path)
    assert svc["state"] == "waiting_approval"
    assert (svc["hasKey"], svc["public"], svc["apiKey"]) == (True, False, None)
    sid = svc["id"]
    planned = await app.state.orchestrator.db(lambda ses: ses.get(m.Service, sid).api_key_hash)
    try:
        approved = await ok(await api.post(f"/api/v1/services/{sid}/approve"))
        key = approved["apiKey"]
        assert isinstance(key, str) and key.startswith("atomsk_")
        stored = await app.state.orchestrator.db(lambda ses: ses.get(m.Service, sid).api_key_hash)
        assert stored == token_hash(key) != planned
        again = await api.get(f"/api/v1/services/{sid}")
        listed = await api.get("/api/v1/services")
        assert again.json()["apiKey"] is None and key not in again.text and key not in listed.text
    finally:
        await api.post(f"/api/v1/services/{sid}/stop")


@pytest.mark.parametrize(("model_conf", "expected"), [({"servicePublic": True}, True), ({}, False)])
async def test_model_conf_makes_a_service_public(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path, model_conf: dict[str, object], expected: bool
) -> None:
    svc = await finished_service(app, api, tmp_path, model_conf)
    assert svc["public"] is expected


async def test_settings_make_new_services_public_by_default(settings: Settings, tmp_path: Path) -> None:
    app = create_app(settings.model_copy(update={"service_auth": False}), reconcile=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://control") as api:
            assert (await finished_service(app, api, tmp_path))["public"] is True
