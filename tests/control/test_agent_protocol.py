"""The agent's side of the API: run tokens, state reports, heartbeats, metrics, model versions, finish.

The test plays the agent over HTTP against the real app and store; the runtime is created
the way startNodeTask creates it, without starting a process (the real agent is covered in e2e).
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from control import runs
from control import schemas as s
from control.store import models as m
from tests.control.factory import LAMP, define_node, ok

AG = "/api/v1/agent/runs"


async def _queued_run(
    app: FastAPI, api: httpx.AsyncClient, tmp_path, deploy: str = "AUTO_DEPLOY"
) -> tuple[int, str]:
    d = await define_node(api, data_dir=str(tmp_path), deploy=deploy)
    orch = app.state.orchestrator
    event = s.TaskEvent(task_id=d["node"]["id"])
    run, token = await orch.db(lambda ses: runs.start_node(session=ses, event=event, adapter="local"))
    return run.id, token


async def test_run_token_is_required_and_checked(app: FastAPI, api: httpx.AsyncClient, tmp_path) -> None:
    run_id, token = await _queued_run(app, api, tmp_path)
    assert (await api.get(f"{AG}/{run_id}/spec")).status_code == 401
    bad = await api.get(f"{AG}/{run_id}/spec", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and "not valid" in bad.json()["msg"]
    spec = await ok(await api.get(f"{AG}/{run_id}/spec", headers={"Authorization": f"Bearer {token}"}))
    assert spec["runId"] == run_id
    assert spec["operator"]["executeObject"] == "TrainExample"
    assert [x["sourceType"] for x in spec["sources"]] == ["source", "test_source", "sink"]


async def test_password_reaches_only_the_agent(app: FastAPI, api: httpx.AsyncClient, tmp_path) -> None:
    d = await define_node(api, data_dir=str(tmp_path), password="Hunter2-secret")
    orch = app.state.orchestrator
    run, token = await orch.db(
        lambda ses: runs.start_node(session=ses, event=s.TaskEvent(task_id=d["node"]["id"]), adapter="local")
    )
    stored = await orch.db(lambda ses: ses.get(m.Runtime, run.id).spec)
    assert "Hunter2" not in str(stored)  # encrypted at rest
    spec = await ok(await api.get(f"{AG}/{run.id}/spec", headers={"Authorization": f"Bearer {token}"}))
    assert spec["sources"][0]["connection"]["connectPassword"] == "Hunter2-secret"
    assert "Hunter2" not in (await api.get(f"/api/v1/runs/{run.id}")).text


async def test_full_protocol_and_single_service(app: FastAPI, api: httpx.AsyncClient, tmp_path) -> None:
    run_id, token = await _queued_run(app, api, tmp_path)
    auth = {"Authorization": f"Bearer {token}"}
    await ok(
        await api.post(f"{AG}/{run_id}/state", json={"state": "running", "reason": "agent up"}, headers=auth)
    )
    beat = await ok(
        await api.post(f"{AG}/{run_id}/heartbeat", json={"progress": 0.5, "stage": "train"}, headers=auth)
    )
    assert beat == {"stop": False}
    await ok(
        await api.post(
            f"{AG}/{run_id}/metrics", json={"step": 1, "values": {"loss": 0.7, "accuracy": 0.6}}, headers=auth
        ),
        204,
    )
    report = {
        "modelAddress": "file:///m/model.tar.gz",
        "modelScore": 0.93,
        "servingObject": "runtime_agent.examples.train_example:TabularReasoning",
    }
    v1 = await ok(await api.post(f"{AG}/{run_id}/model-version", json=report, headers=auth))
    again = await ok(await api.post(f"{AG}/{run_id}/model-version", json=report, headers=auth))
    assert v1 == again and v1["modelVersion"] == "1"

    # the service launch itself is exercised end to end in tests/e2e; here only the record matters
    app.state.orchestrator.start_service = _record_only
    node_id = (await ok(await api.get(f"/api/v1/runs/{run_id}")))["nodeId"]
    wrong = await api.post(
        f"{LAMP}/taskEvent/runningAutoFinish",
        headers=auth,
        json={"taskId": node_id + 1000, "runParameter": {"runId": str(run_id)}},
    )
    assert wrong.status_code == 422 and "does not belong" in wrong.json()["msg"]
    event = {"taskId": node_id, "operatorRuntimeType": "TRAIN", "runParameter": {"runId": str(run_id)}}
    first = await ok(await api.post(f"{LAMP}/taskEvent/runningAutoFinish", json=event, headers=auth))
    second = await ok(await api.post(f"{LAMP}/taskEvent/runningAutoFinish", json=event, headers=auth))
    assert first["state"] == "succeeded" and first["serviceId"] is not None
    assert second["serviceId"] == first["serviceId"]
    services = await ok(await api.get("/api/v1/services"))
    assert len(services) == 1 and services[0]["modelVersion"] == "1"

    run = await ok(await api.get(f"/api/v1/runs/{run_id}"))
    assert [h["toState"] for h in run["history"]] == ["queued", "running", "succeeded"]
    assert run["progress"] == 0.5
    metrics = await ok(await api.get(f"/api/v1/runs/{run_id}/metrics"))
    assert {p["name"] for p in metrics} == {"loss", "accuracy"}
    model = await ok(await api.get("/api/v1/spaces/default/models/tabular"))
    assert model["versions"][0]["modelScore"] == 0.93

    late = await api.post(f"{AG}/{run_id}/state", json={"state": "running"}, headers=auth)
    assert late.status_code == 409 and "already ended" in late.json()["msg"]


async def _record_only(service_id: int) -> None:
    return None


async def test_stop_is_seen_by_the_next_heartbeat(app: FastAPI, api: httpx.AsyncClient, tmp_path) -> None:
    run_id, token = await _queued_run(app, api, tmp_path, deploy="NOT_DEPLOY")
    auth = {"Authorization": f"Bearer {token}"}
    await ok(await api.post(f"{AG}/{run_id}/state", json={"state": "running"}, headers=auth))
    stopped = await ok(await api.post(f"/api/v1/runs/{run_id}/stop", json={"reason": "changed my mind"}))
    assert stopped["state"] == "stopped" and stopped["reason"] == "changed my mind"
    assert (await ok(await api.post(f"{AG}/{run_id}/heartbeat", json={}, headers=auth))) == {"stop": True}
    again = await api.post(f"/api/v1/runs/{run_id}/stop")
    assert again.status_code == 409


async def test_touch_deploy_waits_for_approval(app: FastAPI, api: httpx.AsyncClient, tmp_path) -> None:
    run_id, token = await _queued_run(app, api, tmp_path, deploy="TOUCH_DEPLOY")
    auth = {"Authorization": f"Bearer {token}"}
    await ok(await api.post(f"{AG}/{run_id}/state", json={"state": "running"}, headers=auth))
    await ok(
        await api.post(
            f"{AG}/{run_id}/model-version",
            headers=auth,
            json={
                "modelAddress": "file:///m.tar.gz",
                "servingObject": "runtime_agent.examples.train_example:TabularReasoning",
            },
        )
    )
    node_id = (await ok(await api.get(f"/api/v1/runs/{run_id}")))["nodeId"]
    result = await ok(
        await api.post(
            f"{LAMP}/taskEvent/runningAutoFinish",
            headers=auth,
            json={"taskId": node_id, "runParameter": {"runId": str(run_id)}},
        )
    )
    svc = await ok(await api.get(f"/api/v1/services/{result['serviceId']}"))
    assert svc["state"] == "waiting_approval" and svc["endpoint"] is None
