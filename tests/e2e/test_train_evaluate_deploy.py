"""Seed 000's train -> evaluate -> deploy chain with real agent processes: the evaluate node scores the
version its upstream just trained on a holdout set, and deploys it only if it beats the served one.

The first exam run trains version 1, scores it and deploys it; the second trains version 2 on data
with shuffled labels, whose holdout score is lower: it is not deployed, says why, and its
operatorResult is NOT_CONTAIN_OPTIMAL. Every process control started is killed at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from control.client import AsyncControlClient
from control.schemas import TaskEvent
from tests.control.factory import LAMP, SP, ok
from tests.e2e.conftest import LiveControl, make_tabular, run_state, wait_for

pytestmark = pytest.mark.e2e
ENDED = ("succeeded", "failed", "stopped", "skipped")


async def define_chain(api: httpx.AsyncClient, data: Path) -> int:
    """train (TRAIN, registers a version) -> evaluate (REASONING, input model: train.model,
    AUTO_DEPLOY); returns the exam id."""
    await ok(await api.put(SP, json={"spaceName": "default"}))
    conn = {"connectName": "files", "connectType": "FILE", "connectAddr": str(data)}
    await ok(await api.put(f"{SP}/connections/files", json=conn))
    sources = {}
    for name, role, target in (("train", "source", "train.csv"), ("test", "test_source", "test.csv"),
                               ("holdout", "test_source", "holdout.csv")):  # fmt: skip
        body = {"sourceName": name, "connectionName": "files", "sourceType": role, "operateExecute": target,
                "dataFormat": "csv"}  # fmt: skip
        sources[name] = (await ok(await api.put(f"{SP}/sources/{name}", json=body)))["id"]
    trainer = await ok(
        await api.put(
            f"{SP}/operators/tabular",
            json={"operatorName": "tabular", "operatorRuntimeType": "TRAIN",
                  "moduleName": "runtime_agent.examples.train_example", "executeObject": "TrainExample",
                  "operatorEpoch": 3, "deployType": "NOT_DEPLOY",
                  "operatorConf": {"labelColumn": "label", "hidden": 16, "lr": 0.05}},
        )
    )  # fmt: skip
    evaluator = await ok(
        await api.put(
            f"{SP}/operators/evaluate",
            json={"operatorName": "evaluate", "operatorRuntimeType": "REASONING",
                  "moduleName": "runtime_agent.examples.evaluate_example", "executeObject": "EvaluateExample",
                  "deployType": "AUTO_DEPLOY", "operatorConf": {"labelColumn": "label"}},
        )
    )  # fmt: skip
    model = await ok(
        await api.put(f"{SP}/models/tabular", json={"modelName": "tabular", "connectionName": "files"})
    )
    await ok(await api.put(f"{SP}/experiments/release", json={"experimentName": "release"}))
    experiment = await ok(await api.get(f"{SP}/experiments/release"))
    exam = await ok(
        await api.put(f"{SP}/exams/weekly", json={"examName": "weekly", "experimentId": experiment["id"]})
    )
    nodes = {}
    for name, kind in (("train", "TRAIN"), ("evaluate", "REASONING")):
        body = {"nodeName": name, "operatorRuntimeType": kind, "examId": exam["id"]}
        nodes[name] = (await ok(await api.put(f"{SP}/nodes/{name}", json=body)))["id"]
    relations = [
        {"nodeId": nodes["train"], "operatorId": trainer["id"], "modelID": model["id"],
         "dataSourceIds": [sources["train"], sources["test"]], "nextNodeId": nodes["evaluate"]},
        {"nodeId": nodes["evaluate"], "operatorId": evaluator["id"], "dataSourceIds": [sources["holdout"]]},
    ]  # fmt: skip
    for relation in relations:
        await ok(await api.post(f"{LAMP}/node/createNodeRelation", json=relation))
    await ok(await api.patch(f"{SP}/nodes/train", json={"nodeStatus": "EDIT_FINISH"}))
    await ok(
        await api.patch(
            f"{SP}/nodes/evaluate", json={"nodeStatus": "EDIT_FINISH", "inputs": {"model": "train.model"}}
        )
    )
    return int(exam["id"])


async def exam_run(client: AsyncControlClient, exam_id: int) -> tuple[Any, Any]:
    train, evaluate = (await client.start_node_task(TaskEvent(task_id=exam_id, task_type="EXAM"))).run_ids
    ran = await wait_for(lambda: run_state(client, train, ENDED), timeout=90, what="train to end")
    assert ran.state.value == "succeeded", ran.reason
    scored = await wait_for(lambda: run_state(client, evaluate, ENDED), timeout=90, what="evaluate to end")
    assert scored.state.value == "succeeded", scored.reason
    return ran, scored


async def test_evaluated_version_deploys_only_when_it_beats_the_served_one(
    live_control: LiveControl, client: AsyncControlClient, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    make_tabular(data, rows=800)
    holdout = pd.read_csv(data / "test.csv")
    holdout.to_csv(data / "holdout.csv", index=False)
    async with httpx.AsyncClient(base_url=live_control.url, timeout=60) as api:
        exam_id = await define_chain(api, data)

        train1, eval1 = await exam_run(client, exam_id)
        artifacts = {a.name: a for a in await client.run_artifacts(train1.id)}
        v1 = artifacts["model"].value
        assert v1["version"] == "1"
        assert "sink:test" not in artifacts  # sinks only: this node has none
        eval_inputs = (await ok(await api.get(f"/api/v1/runs/{eval1.id}/spec")))["inputs"]
        assert eval_inputs["model"]["value"]["modelVersionId"] == v1["modelVersionId"]
        evaluated = (await client.run_artifacts(eval1.id))[0]
        assert evaluated.name == "metrics" and evaluated.value["score"] > 0.8
        services = [x for x in await ok(await api.get("/api/v1/services")) if x["runtimeId"] == eval1.id]
        assert len(services) == 1 and services[0]["modelVersion"] == "1"

        rng = np.random.default_rng(3)  # the same features with shuffled labels: nothing to learn
        train = pd.read_csv(data / "train.csv")
        train["label"] = rng.permutation(train["label"].to_numpy())
        train.to_csv(data / "train.csv", index=False)

        train2, eval2 = await exam_run(client, exam_id)
        v2 = {a.name: a for a in await client.run_artifacts(train2.id)}["model"].value
        assert v2["version"] == "2"
        score2 = {a.name: a for a in await client.run_artifacts(eval2.id)}["metrics"].value["score"]
        assert score2 < evaluated.value["score"]
        eval2 = await client.get_run(eval2.id)
        score1 = evaluated.value["score"]
        assert (
            eval2.reason
            == f"version 2 scored {score2:g}, not above served version 1's {score1:g}: not deployed"
        )
        assert eval2.reason in [t.reason for t in eval2.history]
        assert not [x for x in await ok(await api.get("/api/v1/services")) if x["runtimeId"] == eval2.id]
        versions = {
            v["modelVersion"]: v for v in (await ok(await api.get(f"{SP}/models/tabular")))["versions"]
        }
        assert versions["1"]["operatorResult"] == "CONTAIN_OPTIMAL"
        assert versions["2"]["operatorResult"] == "NOT_CONTAIN_OPTIMAL"
        assert versions["2"]["metrics"]["evaluatedScore"] == score2
        assert versions["2"]["metrics"]["deployDecision"] == eval2.reason
