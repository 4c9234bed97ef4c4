"""Artifacts between nodes: a run's outputs are recorded when it succeeds, a downstream node's inputs
resolve to them by node and output name when it is dispatched, bad references are refused at apply
naming `inputs.<name>`, and another space's artifacts are hidden. Real app over ASGI, on SQLite and
MariaDB, with a recording adapter in place of agent processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.control.factory import LAMP, SP, RecordingAdapter, ok
from tests.control.test_exams import make_exam, run_of
from tests.control.test_tenancy import add_tenant, add_users, auth

AG = "/api/v1/agent/runs"


@pytest.fixture
def adapter(app: FastAPI) -> RecordingAdapter:
    fake = RecordingAdapter()
    app.state.orchestrator.adapters["local"] = fake
    return fake


START = f"{LAMP}/taskEvent/startNodeTask"
FINISH = f"{LAMP}/taskEvent/runningAutoFinish"


async def train_leaves(
    app: FastAPI, api: httpx.AsyncClient, adapter: RecordingAdapter, run_id: int, node_id: int, score: float
) -> None:
    """What a training agent does: running, metrics, a model version, its sink, runningAutoFinish."""
    h = adapter.auth(run_id)
    await ok(await api.post(f"{AG}/{run_id}/state", json={"state": "running"}, headers=h))
    await ok(
        await api.post(
            f"{AG}/{run_id}/metrics", json={"step": 1, "values": {"score": score, "loss": 1}}, headers=h
        ),
        204,
    )
    await ok(
        await api.post(
            f"{AG}/{run_id}/model-version",
            json={"modelAddress": f"file:///models/{run_id}.tar.gz", "modelScore": score},
            headers=h,
        )
    )
    value = {"connection": "files", "target": "predictions.csv", "rows": 3, "format": "csv"}
    sink = {
        "name": "sink:predictions",
        "kind": "dataset",
        "uri": "FILE://files/predictions.csv",
        "value": value,
    }
    for _ in range(2):  # a report sent again replaces the first one
        got = await ok(
            await api.post(f"/api/v1/runs/{run_id}/artifacts", json={"artifacts": [sink]}, headers=h)
        )
        assert got == {"stored": 1}
    await ok(
        await api.post(FINISH, json={"taskId": node_id, "runParameter": {"runId": str(run_id)}}, headers=h)
    )
    await app.state.orchestrator.exams.advance()  # downstream runs of the exam run start now


async def bind_model(api: httpx.AsyncClient, ids: dict[str, Any], node: str, nxt: str | None) -> None:
    """Give `node`'s relation the model `tabular` (make_exam's relations have none)."""
    model = await ok(await api.get(f"{SP}/models/tabular"))
    operator = await ok(await api.get(f"{SP}/operators/tabular"))
    sources = [
        (await ok(await api.get(f"{SP}/sources/{name}")))["id"] for name in ("train", "test", "predictions")
    ]
    relation = {
        "nodeId": ids[node],
        "operatorId": operator["id"],
        "dataSourceIds": sources,
        "modelID": model["id"],
        "nextNodeId": ids[nxt] if nxt else None,
    }
    await ok(await api.post(f"{LAMP}/node/createNodeRelation", json=relation))


async def two_node_exam(api: httpx.AsyncClient, tmp_path: Path, inputs: dict[str, str]) -> dict[str, Any]:
    ids = await make_exam(api, tmp_path, {"train": "evaluate", "evaluate": None})
    await bind_model(api, ids, "train", "evaluate")
    await ok(await api.patch(f"{SP}/nodes/evaluate", json={"inputs": inputs}))
    return ids


async def test_outputs_recorded_and_inputs_resolved_by_name(
    app: FastAPI, api: httpx.AsyncClient, adapter: RecordingAdapter, tmp_path: Path
) -> None:
    ids = await two_node_exam(
        api, tmp_path, {"model": "train.model", "scores": "train.metrics", "rows": "train.predictions"}
    )
    started = await ok(await api.post(START, json={"taskId": ids["exam"], "taskType": "EXAM"}))
    train, evaluate = started["runIds"]
    assert set(adapter.launches) == {train}
    await train_leaves(app, api, adapter, train, ids["train"], 0.75)

    got = {a["name"]: a for a in await ok(await api.get(f"/api/v1/runs/{train}/artifacts"))}
    assert set(got) == {"model", "metrics", "sink:predictions"}
    model = got["model"]
    assert (model["kind"], model["uri"]) == ("model", f"file:///models/{train}.tar.gz")
    assert model["value"]["version"] == "1" and model["value"]["score"] == 0.75
    assert model["value"]["operatorResult"] == "CONTAIN_OPTIMAL" and model["value"]["modelName"] == "tabular"
    assert got["metrics"]["value"] == {"score": 0.75, "loss": 1.0}
    assert got["sink:predictions"]["value"]["rows"] == 3 and got["sink:predictions"]["reusedFrom"] is None

    assert evaluate in adapter.launches  # the engine dispatched it once train succeeded
    spec = await ok(await api.get(f"/api/v1/runs/{evaluate}/spec"))
    assert spec["inputs"]["model"]["runId"] == train
    assert spec["inputs"]["model"]["value"]["modelVersionId"] == model["value"]["modelVersionId"]
    assert spec["inputs"]["scores"]["value"]["score"] == 0.75
    assert spec["inputs"]["rows"]["name"] == "sink:predictions"  # a sink named by its source name
    assert spec["model"]["modelAddress"] == f"file:///models/{train}.tar.gz"  # loads what train made
    env = adapter.launches[evaluate].env
    assert env.get("ATOM_MODEL_VERSION") == "1"

    h = adapter.auth(evaluate)
    for state in ("running", "succeeded"):
        await ok(await api.post(f"{AG}/{evaluate}/state", json={"state": state}, headers=h))
    assert [a["name"] for a in await ok(await api.get(f"/api/v1/runs/{evaluate}/artifacts"))] == ["metrics"]

    # the node started alone (no exam run): its inputs come from the upstream node's latest success
    (alone,) = (await ok(await api.post(START, json={"taskId": ids["evaluate"]})))["runIds"]
    assert alone in adapter.launches
    alone_spec = await ok(await api.get(f"/api/v1/runs/{alone}/spec"))
    assert alone_spec["inputs"]["model"]["runId"] == train and alone_spec["examRunId"] is None


async def test_missing_output_fails_the_run_naming_the_input(
    app: FastAPI, api: httpx.AsyncClient, adapter: RecordingAdapter, tmp_path: Path
) -> None:
    ids = await two_node_exam(api, tmp_path, {"report": "train.report-html"})
    started = await ok(await api.post(START, json={"taskId": ids["exam"], "taskType": "EXAM"}))
    train, evaluate = started["runIds"]
    await train_leaves(app, api, adapter, train, ids["train"], 0.5)
    run = await run_of(api, evaluate)
    assert run["state"] == "failed", run
    assert run["reason"].startswith("inputs.report: run ") and "left no output 'report-html'" in run["reason"]
    assert "(it left: metrics, model, sink:predictions)" in run["reason"]
    assert evaluate not in adapter.launches


async def test_bad_references_refused_at_apply_nothing_stored(
    app: FastAPI, api: httpx.AsyncClient, adapter: RecordingAdapter, tmp_path: Path
) -> None:
    await make_exam(api, tmp_path, {"train": "evaluate", "evaluate": None})
    await ok(await api.put(f"{SP}/nodes/loner", json={"nodeName": "loner", "operatorRuntimeType": "TRAIN"}))
    cases = [
        ("evaluate", "ghost.model", "node 'ghost' does not exist"),
        ("evaluate", "loner.model", "node 'loner' is not in the same exam as 'evaluate'"),
        ("train", "evaluate.model", "node 'evaluate' is not upstream of 'train'"),
        (
            "evaluate",
            "train.sink:nowhere",
            "'nowhere' is not a sink of node 'train' (its sinks: predictions)",
        ),
    ]
    for node, ref, msg in cases:
        resp = await api.patch(f"{SP}/nodes/{node}", json={"inputs": {"data": ref}})
        assert resp.status_code == 422, resp.text
        body = resp.json()
        assert body["msg"].startswith("inputs.data: ") and msg in body["msg"], body
        assert [e["field"] for e in body["errors"]] == ["inputs.data"]
        assert (await ok(await api.get(f"{SP}/nodes/{node}")))["inputs"] == {}
    # not `node.output` at all: the schema refuses it, naming the input
    resp = await api.patch(f"{SP}/nodes/evaluate", json={"inputs": {"data": "no-dot"}})
    assert resp.status_code == 422 and "data" in resp.text


async def test_agent_cannot_report_model_or_metrics(
    app: FastAPI, api: httpx.AsyncClient, adapter: RecordingAdapter, tmp_path: Path
) -> None:
    ids = await make_exam(api, tmp_path, {"train": None})
    started = await ok(await api.post(START, json={"taskId": ids["exam"], "taskType": "EXAM"}))
    (train,) = started["runIds"]
    for bad in ({"name": "model", "kind": "file"}, {"name": "x", "kind": "metrics"}):
        resp = await api.post(
            f"/api/v1/runs/{train}/artifacts", json={"artifacts": [bad]}, headers=adapter.auth(train)
        )
        assert resp.status_code == 422 and "artifacts[0].name" in resp.text
    resp = await api.post(f"/api/v1/runs/{train}/artifacts", json={"artifacts": []})
    assert resp.status_code == 401  # the run's token, not a user's
    assert await ok(await api.get(f"/api/v1/runs/{train}/artifacts")) == []


async def test_another_space_artifacts_are_hidden(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    tokens = add_users(app)
    a = await add_tenant(api, app, tokens["alice"], "a", tmp_path)
    await add_tenant(api, app, tokens["bob"], "b", tmp_path)
    posted = await api.post(
        f"/api/v1/runs/{a.run_id}/artifacts",
        json={"artifacts": [{"name": "report", "kind": "file", "uri": "file:///r.html"}]},
        headers=auth(a.run_token),
    )
    assert posted.status_code == 200, posted.text
    mine = await ok(await api.get(f"/api/v1/runs/{a.run_id}/artifacts", headers=auth(tokens["alice"])))
    assert [x["name"] for x in mine] == ["report"]
    hidden = await api.get(f"/api/v1/runs/{a.run_id}/artifacts", headers=auth(tokens["bob"]))
    missing = await api.get("/api/v1/runs/987654/artifacts", headers=auth(tokens["bob"]))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["msg"] == f"run {a.run_id} does not exist"
