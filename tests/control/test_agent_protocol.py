"""The agent's side of the API: run tokens, state reports, heartbeats, metrics, model versions, finish.

The test plays the agent over HTTP against the real app and store; the runtime is created
the way startNodeTask creates it, without starting a process (the real agent is covered in e2e).
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from control import launch
from control import schemas as s
from control.client import AsyncControlClient
from control.store import models as m
from tests.control.factory import LAMP, define_node, ok

AG = "/api/v1/agent/runs"


async def _queued_run(
    app: FastAPI, api: httpx.AsyncClient, tmp_path, deploy: str = "AUTO_DEPLOY"
) -> tuple[int, str]:
    d = await define_node(api, data_dir=str(tmp_path), deploy=deploy)
    orch = app.state.orchestrator
    event = s.TaskEvent(task_id=d["node"]["id"])
    run, token = await orch.db(lambda ses: launch.start_node(session=ses, event=event, adapter="local"))
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
        lambda ses: launch.start_node(
            session=ses, event=s.TaskEvent(task_id=d["node"]["id"]), adapter="local"
        )
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
    # a heartbeat between the finish and the agent's exit does not turn its success into a stop
    assert (await ok(await api.post(f"{AG}/{run_id}/heartbeat", json={}, headers=auth))) == {"stop": False}
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


async def test_run_spec_has_no_password_and_the_sources_progress(
    app: FastAPI, api: httpx.AsyncClient, tmp_path
) -> None:
    d = await define_node(api, data_dir=str(tmp_path), password="Hunter2-secret")
    await ok(
        await api.patch(
            "/api/v1/spaces/default/connections/files",
            json={
                "sourceConf": {
                    "root": str(tmp_path),
                    "session_token": "tok-XYZ",
                    "nested": {"secretKey": "k-1"},
                }
            },
        )
    )
    orch = app.state.orchestrator
    run, token = await orch.db(
        lambda ses: launch.start_node(
            session=ses, event=s.TaskEvent(task_id=d["node"]["id"]), adapter="local"
        )
    )
    stored = await orch.db(lambda ses: ses.get(m.Runtime, run.id).spec)
    encrypted = stored["sources"][0]["connection"]["connectPassword"]
    assert encrypted and "Hunter2" not in encrypted

    before = await api.get(f"/api/v1/runs/{run.id}/spec")
    assert before.status_code == 200
    for secret in ("Hunter2", encrypted, "connectPassword", "tok-XYZ", "k-1"):
        assert secret not in before.text
    spec = before.json()
    assert spec["runId"] == run.id and spec["nodeName"] == "train-tabular"
    assert [x["sourceName"] for x in spec["sources"]] == ["train", "test", "predictions"]
    conn = spec["sources"][0]["connection"]
    assert conn["hasPassword"] is True and conn["connectName"] == "files"
    assert conn["sourceConf"] == {
        "root": str(tmp_path),
        "session_token": "***",
        "nested": {"secretKey": "***"},
    }
    assert spec["model"]["connection"]["hasPassword"] is True
    assert all(x["rowsRead"] is None and x["rowsTotal"] is None for x in spec["sources"])

    auth = {"Authorization": f"Bearer {token}"}
    await ok(await api.post(f"{AG}/{run.id}/state", json={"state": "running"}, headers=auth))
    beat = {
        "rowsRead": 120,
        "sources": {
            "train": {"rowsRead": 100, "rowsTotal": 480},
            "nobody": {"rowsRead": 5},  # not a source of this run: dropped
        },
    }
    await ok(await api.post(f"{AG}/{run.id}/heartbeat", json=beat, headers=auth))
    later = {"sources": {"test": {"rowsRead": 20, "rowsTotal": None}}}  # merged with the earlier counts
    await ok(await api.post(f"{AG}/{run.id}/heartbeat", json=later, headers=auth))
    await ok(await api.post(f"{AG}/{run.id}/heartbeat", json={"stage": "train"}, headers=auth))  # keeps them
    bad = await api.post(
        f"{AG}/{run.id}/heartbeat", json={"sources": {"train": {"rowsRead": -1}}}, headers=auth
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "sources.train.rowsRead"

    transport = httpx.ASGITransport(app=app)
    async with AsyncControlClient("http://control", transport=transport) as client:
        view = await client.run_spec(run.id)
    progress = {x.source_name: (x.rows_read, x.rows_total) for x in view.sources}
    assert progress == {"train": (100, 480), "test": (20, None), "predictions": (None, None)}
    stored_progress = await orch.db(lambda ses: ses.get(m.Runtime, run.id).source_progress)
    assert set(stored_progress) == {"train", "test"}
    missing = await api.get("/api/v1/runs/9999/spec")
    assert missing.status_code == 404


async def test_a_service_recorded_but_never_started_is_started_by_reconcile(
    app: FastAPI, api: httpx.AsyncClient, tmp_path
) -> None:
    """Control committed the finish (service `starting`) and stopped before starting its process."""
    from datetime import timedelta

    run_id, token = await _queued_run(app, api, tmp_path)
    auth = {"Authorization": f"Bearer {token}"}
    await ok(await api.post(f"{AG}/{run_id}/state", json={"state": "running"}, headers=auth))
    report = {"modelAddress": "file:///m/model.tar.gz", "servingObject": "mod:Serving"}
    await ok(await api.post(f"{AG}/{run_id}/model-version", json=report, headers=auth))
    orch = app.state.orchestrator
    orch.start_service = _record_only  # the process start that never happened
    node_id = (await ok(await api.get(f"/api/v1/runs/{run_id}")))["nodeId"]
    event = {"taskId": node_id, "runParameter": {"runId": str(run_id)}}
    service_id = (await ok(await api.post(f"{LAMP}/taskEvent/runningAutoFinish", json=event, headers=auth)))[
        "serviceId"
    ]
    started: list[int] = []

    async def record(sid: int) -> None:
        started.append(sid)

    orch.start_service = record
    await app.state.reconciler.reconcile_once()
    assert started == []  # a fresh `starting` service may still be on its way up

    def age(ses) -> None:  # type: ignore[no-untyped-def]
        svc = ses.get(m.Service, service_id)
        svc.updated_at = svc.updated_at - timedelta(minutes=1)

    await orch.db(age)
    await app.state.reconciler.reconcile_once()
    assert started == [service_id]
