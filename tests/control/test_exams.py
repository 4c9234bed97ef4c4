"""startNodeTask with taskType EXAM: runs in nextNodeId order, downstream runs wait queued, the reconcile
pass (or the end of an upstream run) dispatches or skips them; against the real store (SQLite and
MariaDB) with a recording adapter."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from control import runs
from control.api.app import create_app
from control.schemas import RunState
from control.settings import Settings
from control.store import models as m
from control.store.models import utcnow
from tests.control.factory import LAMP, SP, RecordingAdapter, define_node, ok

AG = "/api/v1/agent/runs"
START = f"{LAMP}/taskEvent/startNodeTask"


@pytest.fixture
def adapter(app: FastAPI) -> RecordingAdapter:
    fake = RecordingAdapter()
    app.state.orchestrator.adapters["local"] = fake
    return fake


async def make_exam(
    api: httpx.AsyncClient, tmp_path, edges: dict[str, str | None], *, finish: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """Nodes named by `edges` (node -> its nextNode or None) in one exam; returns ids by name."""
    nodes = {}
    for name in edges:
        d = await define_node(api, data_dir=str(tmp_path), node=name, finish=False, deploy="NOT_DEPLOY")
        nodes[name] = d
    await ok(await api.put(f"{SP}/experiments/scene", json={"experimentName": "scene"}))
    experiment = await ok(await api.get(f"{SP}/experiments/scene"))
    exam = await ok(
        await api.put(f"{SP}/exams/nightly", json={"examName": "nightly", "experimentId": experiment["id"]})
    )
    for name, nxt in edges.items():
        d = nodes[name]
        relation = {
            "nodeId": d["node"]["id"],
            "operatorId": d["operator"]["id"],
            "dataSourceIds": list(d["sources"].values()),
            "nextNodeId": nodes[nxt]["node"]["id"] if nxt else None,
        }
        await ok(await api.post(f"{LAMP}/node/createNodeRelation", json=relation))
        status = "EDIT_FINISH" if finish is None or name in finish else "EDITING"
        await ok(await api.patch(f"{SP}/nodes/{name}", json={"examId": exam["id"], "nodeStatus": status}))
    return {"exam": exam["id"], **{name: d["node"]["id"] for name, d in nodes.items()}}


async def run_of(api: httpx.AsyncClient, run_id: int) -> dict[str, Any]:
    result: dict[str, Any] = await ok(await api.get(f"/api/v1/runs/{run_id}"))
    return result


async def agent_says(api: httpx.AsyncClient, adapter: RecordingAdapter, run_id: int, *states: str) -> None:
    for state in states:
        await ok(await api.post(f"{AG}/{run_id}/state", json={"state": state}, headers=adapter.auth(run_id)))


async def test_exam_runs_in_dag_order(
    app: FastAPI, api: httpx.AsyncClient, adapter: RecordingAdapter, tmp_path
) -> None:
    ids = await make_exam(
        api, tmp_path, {"step-a": "step-b", "step-b": "step-c", "step-c": None, "solo": None}
    )
    started = await ok(await api.post(START, json={"taskId": ids["exam"], "taskType": "EXAM"}))
    run_ids = started["runIds"]
    assert len(run_ids) == 4
    a, solo, b, c = run_ids  # roots first (id order), then each level
    assert [(await run_of(api, r))["nodeName"] for r in run_ids] == ["step-a", "solo", "step-b", "step-c"]
    assert set(adapter.launches) == {a, solo}  # roots dispatched at once
    run_b, run_c = await run_of(api, b), await run_of(api, c)
    assert (run_b["state"], run_b["reason"], run_b["upstreamRunIds"]) == ("queued", "waiting for step-a", [a])
    assert (run_c["state"], run_c["reason"], run_c["upstreamRunIds"]) == ("queued", "waiting for step-b", [b])
    assert run_b["examId"] == ids["exam"] and (await run_of(api, a))["upstreamRunIds"] == []

    # waiting runs are not "never dispatched", however old they are
    with app.state.orchestrator.store.transaction() as ses:
        ses.execute(
            update(m.Runtime).where(m.Runtime.id.in_([b, c])).values(created_at=utcnow() - timedelta(days=1))
        )
    reconciler = app.state.reconciler
    await reconciler.reconcile_once()
    assert (await run_of(api, b))["state"] == "queued" and set(adapter.launches) == {a, solo}

    await agent_says(api, adapter, a, "running", "succeeded")
    await reconciler.reconcile_once()
    run_b = await run_of(api, b)
    assert run_b["state"] == "pending" and run_b["reason"] == "upstream step-a succeeded"
    assert b in adapter.launches and run_b["externalId"] == f"fake:{b}"
    spec = await api.get(f"{AG}/{b}/spec", headers=adapter.auth(b))  # the fresh token works
    assert spec.status_code == 200 and spec.json()["nodeName"] == "step-b"
    await reconciler.reconcile_once()  # dispatched late, but silent only since its dispatch
    assert (await run_of(api, b))["state"] == "pending" and c not in adapter.launches

    await agent_says(api, adapter, b, "running", "failed")
    await reconciler.reconcile_once()
    run_c = await run_of(api, c)
    assert (run_c["state"], run_c["reason"]) == (
        "skipped",
        "upstream step-b failed (trigger rule all_success)",
    )
    assert c not in adapter.launches
    assert [h["toState"] for h in run_c["history"]] == ["queued", "skipped"]


async def test_fan_in_waits_for_every_upstream(
    api: httpx.AsyncClient, adapter: RecordingAdapter, app: FastAPI, tmp_path
) -> None:
    ids = await make_exam(api, tmp_path, {"left": "join", "right": "join", "join": None})
    left, right, join = (await ok(await api.post(START, json={"taskId": ids["exam"], "taskType": "exam"})))[
        "runIds"
    ]
    assert (await run_of(api, join))["reason"] == "waiting for left, right"
    await agent_says(api, adapter, left, "running", "succeeded")
    await app.state.reconciler.reconcile_once()
    assert (await run_of(api, join))["state"] == "queued"
    await ok(await api.post(f"/api/v1/runs/{right}/stop", json={"reason": "not today"}))
    await app.state.reconciler.reconcile_once()
    run = await run_of(api, join)
    assert (run["state"], run["reason"]) == ("skipped", "upstream right stopped (trigger rule all_success)")


async def test_a_skip_cascades_down_a_chain_in_one_pass(
    api: httpx.AsyncClient, adapter: RecordingAdapter, app: FastAPI, tmp_path
) -> None:
    ids = await make_exam(api, tmp_path, {"s1": "s2", "s2": "s3", "s3": None})
    s1, s2, s3 = (await ok(await api.post(START, json={"taskId": ids["exam"], "taskType": "EXAM"})))["runIds"]
    await agent_says(api, adapter, s1, "running", "failed")
    await app.state.reconciler.reconcile_once()
    assert (await run_of(api, s2))["reason"] == "upstream s1 failed (trigger rule all_success)"
    assert (await run_of(api, s3))["reason"] == "upstream s2 skipped (trigger rule all_success)"


async def test_a_launch_survives_a_control_restart(
    app: FastAPI, api: httpx.AsyncClient, adapter: RecordingAdapter, settings: Settings, tmp_path
) -> None:
    ids = await make_exam(api, tmp_path, {"first": "second", "second": None})
    first, second = (await ok(await api.post(START, json={"taskId": ids["exam"], "taskType": "EXAM"})))[
        "runIds"
    ]
    await agent_says(api, adapter, first, "running")
    with app.state.orchestrator.store.transaction() as ses:  # it ends while no control is up
        runs.transition(
            session=ses, run=runs.get_run(session=ses, run_id=first), to=RunState.SUCCEEDED, reason=""
        )
    assert adapter.launches.keys() == {first}

    restarted = create_app(settings, reconcile=False)  # a new control on the same store
    fresh = RecordingAdapter()
    restarted.state.orchestrator.adapters["local"] = fresh
    async with restarted.router.lifespan_context(restarted):
        await restarted.state.reconciler.reconcile_once()
    assert set(fresh.launches) == {second}
    assert (await run_of(api, second))["state"] == "pending"


async def test_exams_that_cannot_start(
    api: httpx.AsyncClient, adapter: RecordingAdapter, app: FastAPI, tmp_path
) -> None:
    ids = await make_exam(
        api, tmp_path, {"ready": "draft", "draft": "draft-2", "draft-2": None}, finish=("ready",)
    )
    resp = await api.post(START, json={"taskId": ids["exam"], "taskType": "EXAM"})
    assert resp.status_code == 422
    assert "'draft', 'draft-2'" in resp.json()["msg"] and "EDIT_FINISH" in resp.json()["msg"]
    assert resp.json()["errors"][0]["field"] == "taskId"
    assert (await ok(await api.get("/api/v1/runs")))["total"] == 0  # nothing half-started

    experiment = await ok(await api.get(f"{SP}/experiments/scene"))
    empty = await ok(
        await api.put(f"{SP}/exams/empty", json={"examName": "empty", "experimentId": experiment["id"]})
    )
    resp = await api.post(START, json={"taskId": empty["id"], "taskType": "EXAM"})
    assert resp.status_code == 422 and "has no nodes" in resp.json()["msg"]
    missing = await api.post(START, json={"taskId": 9999, "taskType": "EXAM"})
    assert missing.status_code == 404 and "exam 9999" in missing.json()["msg"]
    odd = await api.post(START, json={"taskId": ids["ready"], "taskType": "GRAPH"})
    assert odd.status_code == 422 and odd.json()["errors"][0]["field"] == "taskType"

    for name in ("draft", "draft-2"):
        await ok(await api.patch(f"{SP}/nodes/{name}", json={"nodeStatus": "EDIT_FINISH"}))
    await ok(await api.post(START, json={"taskId": ids["ready"]}))  # the node alone
    busy = await api.post(START, json={"taskId": ids["exam"], "taskType": "EXAM"})
    assert busy.status_code == 409 and "'ready' is already running" in busy.json()["msg"]


async def test_a_one_node_exam(api: httpx.AsyncClient, adapter: RecordingAdapter, tmp_path) -> None:
    ids = await make_exam(api, tmp_path, {"only": None})
    started = await ok(await api.post(START, json={"taskId": ids["exam"], "taskType": "EXAM"}))
    assert len(started["runIds"]) == 1 and started["runIds"][0] in adapter.launches
