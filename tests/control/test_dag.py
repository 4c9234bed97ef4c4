"""The exam DAG engine: fan-out and fan-in, trigger rules, skips with their reasons, cycles refused with
their path, late spec binding, exam run states, resume from the failed nodes. Real store (SQLite and
MariaDB), real app over ASGI, an adapter that records launches instead of starting agents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete

from control import runs, users
from control.dispatch.base import Adapter, Admission, Observed, RunDescription
from control.pipeline import graph
from control.schemas import RunState
from control.store import models as m
from tests.control.factory import LAMP, SP, define_node, ok

AG = "/api/v1/agent/runs"
ER = "/api/v1/exam-runs"
RELATION = f"{LAMP}/node/createNodeRelation"


class Launches(Adapter):
    """Starts nothing: records every launch of every run (a resumed run is launched again)."""

    name = "local"

    def __init__(self) -> None:
        self.launches: dict[int, list[RunDescription]] = {}

    async def _start(self, launch: RunDescription, admission: Admission) -> str:
        self.launches.setdefault(launch.ident, []).append(launch)
        return f"fake:{launch.ident}:{len(self.launches[launch.ident])}"

    async def _stop(self, external_id: str, *, grace: float) -> None:
        return None

    async def _describe(self, external_id: str) -> Observed:
        return Observed(alive=True)

    def auth(self, run_id: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.launches[run_id][-1].env['ATOM_RUN_TOKEN']}"}


@pytest.fixture
def adapter(app: FastAPI) -> Launches:
    fake = Launches()
    app.state.orchestrator.adapters["local"] = fake
    return fake


async def make_dag(
    api: httpx.AsyncClient, tmp_path: Path, edges: dict[str, list[str]], rules: dict[str, str] | None = None
) -> dict[str, int]:
    """Nodes named by `edges` (node -> its next nodes) in exam `nightly`; returns ids by name."""
    nodes = {}
    for name in edges:
        nodes[name] = await define_node(
            api, data_dir=str(tmp_path), node=name, finish=False, deploy="NOT_DEPLOY"
        )
    await ok(await api.put(f"{SP}/experiments/scene", json={"experimentName": "scene"}))
    experiment = await ok(await api.get(f"{SP}/experiments/scene"))
    exam = await ok(
        await api.put(f"{SP}/exams/nightly", json={"examName": "nightly", "experimentId": experiment["id"]})
    )
    for name, nexts in edges.items():
        d = nodes[name]
        relation = {
            "nodeId": d["node"]["id"],
            "operatorId": d["operator"]["id"],
            "dataSourceIds": list(d["sources"].values()),
            "modelID": d["model"]["id"],
            "nextNodeIds": [nodes[n]["node"]["id"] for n in nexts],
        }
        out = await ok(await api.post(RELATION, json=relation))
        assert out["nextNodeIds"] == relation["nextNodeIds"]
        patch = {"examId": exam["id"], "nodeStatus": "EDIT_FINISH", "triggerRule": (rules or {}).get(name)}
        await ok(await api.patch(f"{SP}/nodes/{name}", json={k: v for k, v in patch.items() if v}))
    return {"exam": exam["id"], **{name: d["node"]["id"] for name, d in nodes.items()}}


async def start(api: httpx.AsyncClient) -> dict[str, Any]:
    er: dict[str, Any] = await ok(await api.post(f"{SP}/exams/nightly/runs", json={}), 201)
    return er


async def exam_run(api: httpx.AsyncClient, er_id: int) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The exam run and its runs by node name."""
    er = await ok(await api.get(f"{ER}/{er_id}"))
    return er, {r["nodeName"]: r for r in er["runs"]}


async def agent_says(api: httpx.AsyncClient, adapter: Launches, run_id: int, *states: str) -> None:
    for state in states:
        body: dict[str, Any] = {"state": state}
        if state == "failed":
            body["failureClass"] = "user"
        await ok(await api.post(f"{AG}/{run_id}/state", json=body, headers=adapter.auth(run_id)))


async def settle(app: FastAPI) -> None:
    """Wait for the advance a run's end kicked (and run one more)."""
    await app.state.orchestrator.exams.advance()


async def test_fan_out_and_fan_in(
    app: FastAPI, api: httpx.AsyncClient, adapter: Launches, tmp_path: Path
) -> None:
    ids = await make_dag(
        api, tmp_path, {"prep": ["left", "right"], "left": ["join"], "right": ["join"], "join": []}
    )
    er = await start(api)
    assert er["state"] == "running" and er["trigger"] == "manual" and er["examName"] == "nightly"
    edges = {(a, b) for a, b in er["edges"]}
    assert edges == {
        (ids["prep"], ids["left"]),
        (ids["prep"], ids["right"]),
        (ids["left"], ids["join"]),
        (ids["right"], ids["join"]),
    }
    _, by = await exam_run(api, er["id"])
    assert set(adapter.launches) == {by["prep"]["id"]}
    assert by["join"]["reason"] == "waiting for left, right" and by["join"]["examRunId"] == er["id"]

    await agent_says(api, adapter, by["prep"]["id"], "running", "succeeded")
    await settle(app)
    _, by = await exam_run(api, er["id"])
    assert {by["left"]["state"], by["right"]["state"]} == {"pending"}  # fan-out: both at once
    assert set(adapter.launches) == {by[n]["id"] for n in ("prep", "left", "right")}

    await agent_says(api, adapter, by["left"]["id"], "running", "succeeded")
    await settle(app)
    _, by = await exam_run(api, er["id"])
    assert by["join"]["state"] == "queued"  # fan-in: waits for every parent
    await agent_says(api, adapter, by["right"]["id"], "running", "succeeded")
    await settle(app)
    _, by = await exam_run(api, er["id"])
    assert (by["join"]["state"], by["join"]["reason"]) == ("pending", "upstream left, right succeeded")
    await agent_says(api, adapter, by["join"]["id"], "running", "succeeded")
    await settle(app)
    er, _ = await exam_run(api, er["id"])
    assert er["state"] == "succeeded" and er["finishedAt"] is not None
    listed = await ok(await api.get(ER, params={"examId": ids["exam"], "state": "succeeded"}))
    assert [x["id"] for x in listed["items"]] == [er["id"]] and listed["total"] == 1


async def test_trigger_rules(app: FastAPI, api: httpx.AsyncClient, adapter: Launches, tmp_path: Path) -> None:
    await make_dag(
        api,
        tmp_path,
        {"train": ["evaluate", "cleanup", "alert"], "evaluate": [], "cleanup": [], "alert": []},
        rules={"cleanup": "all_done", "alert": "one_failed"},
    )
    first = await start(api)
    _, by = await exam_run(api, first["id"])
    await agent_says(api, adapter, by["train"]["id"], "running", "failed")
    await settle(app)
    _, by = await exam_run(api, first["id"])
    assert (by["evaluate"]["state"], by["evaluate"]["reason"]) == (
        "skipped",
        "upstream train failed (trigger rule all_success)",
    )
    assert by["cleanup"]["state"] == "pending" and by["cleanup"]["reason"].endswith("(trigger rule all_done)")
    assert (by["alert"]["state"], by["alert"]["reason"]) == (
        "pending",
        "upstream train failed (trigger rule one_failed)",
    )
    assert by["evaluate"]["id"] not in adapter.launches
    for name in ("cleanup", "alert"):
        await agent_says(api, adapter, by[name]["id"], "running", "succeeded")
    await settle(app)
    er, _ = await exam_run(api, first["id"])
    assert (er["state"], er["reason"]) == ("failed", "failed: train")

    second = await start(api)
    _, by = await exam_run(api, second["id"])
    await agent_says(api, adapter, by["train"]["id"], "running", "succeeded")
    await settle(app)
    _, by = await exam_run(api, second["id"])
    assert (by["alert"]["state"], by["alert"]["reason"]) == (
        "skipped",
        "no upstream run failed (trigger rule one_failed)",
    )
    assert by["evaluate"]["state"] == by["cleanup"]["state"] == "pending"
    for name in ("evaluate", "cleanup"):
        await agent_says(api, adapter, by[name]["id"], "running", "succeeded")
    await settle(app)
    er, _ = await exam_run(api, second["id"])
    assert er["state"] == "succeeded"  # a skip does not fail the exam run


async def test_skips_propagate_and_a_cache_hit_counts_as_success(
    app: FastAPI, api: httpx.AsyncClient, adapter: Launches, tmp_path: Path
) -> None:
    await make_dag(api, tmp_path, {"a": ["b"], "b": ["c"], "c": ["d"], "d": []}, rules={"d": "all_done"})
    er = await start(api)
    _, by = await exam_run(api, er["id"])
    await agent_says(api, adapter, by["a"]["id"], "running", "failed")
    await settle(app)
    er, by = await exam_run(api, er["id"])
    assert by["b"]["reason"] == "upstream a failed (trigger rule all_success)"
    assert (by["c"]["state"], by["c"]["reason"]) == (
        "skipped",
        "upstream b skipped (trigger rule all_success)",
    )
    assert (by["d"]["state"], by["d"]["reason"]) == ("pending", "upstream c done (trigger rule all_done)")
    await agent_says(api, adapter, by["d"]["id"], "running", "succeeded")
    await settle(app)
    er, _ = await exam_run(api, er["id"])
    assert er["state"] == "failed"

    again = await start(api)
    _, by = await exam_run(api, again["id"])
    with app.state.orchestrator.store.transaction() as ses:  # served from cache (another helper's job)
        run = runs.get_run(session=ses, run_id=by["a"]["id"])
        runs.transition(session=ses, run=run, to=RunState.SKIPPED, reason="cached: run 1 has its outputs")
    await settle(app)
    _, by = await exam_run(api, again["id"])
    assert (by["b"]["state"], by["b"]["reason"]) == ("pending", "upstream a succeeded")


async def test_a_busy_node_refuses_the_start_and_a_vanished_upstream_run_skips(
    app: FastAPI, api: httpx.AsyncClient, adapter: Launches, tmp_path: Path
) -> None:
    await make_dag(api, tmp_path, {"a": ["b"], "b": []})
    er = await start(api)
    _, by = await exam_run(api, er["id"])
    again = await api.post(f"{SP}/exams/nightly/runs", json={})
    assert again.status_code == 409
    assert again.json()["msg"] == f"node 'a' is already running as run {by['a']['id']}: stop it first"
    gone = 987654  # b's upstream run as if it had been deleted from the store
    with app.state.orchestrator.store.transaction() as ses:
        ses.execute(delete(m.RunUpstream).where(m.RunUpstream.runtime_id == by["b"]["id"]))
        ses.add(m.RunUpstream(runtime_id=by["b"]["id"], upstream_id=gone))
        ses.get_one(m.Runtime, by["b"]["id"]).upstream_run_ids = [gone]
    await settle(app)
    _, by = await exam_run(api, er["id"])
    assert (by["b"]["state"], by["b"]["reason"]) == ("skipped", "1 upstream run(s) no longer exist")


async def test_a_run_whose_stored_spec_is_broken_fails_with_the_reason_and_the_others_go_on(
    app: FastAPI, api: httpx.AsyncClient, adapter: Launches, tmp_path: Path
) -> None:
    await make_dag(api, tmp_path, {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}, rules={"d": "all_done"})
    er = await start(api)
    _, by = await exam_run(api, er["id"])
    with app.state.orchestrator.store.transaction() as ses:  # written by another tool, not control
        ses.get_one(m.Runtime, by["b"]["id"]).spec = {"runId": "x"}
    await agent_says(api, adapter, by["a"]["id"], "running", "succeeded")
    await settle(app)
    _, by = await exam_run(api, er["id"])
    assert by["b"]["state"] == "failed"
    assert by["b"]["reason"].startswith(f"run {by['b']['id']}: its stored spec is not valid (")
    assert by["c"]["state"] == "pending" and by["c"]["id"] in adapter.launches  # claimed with b, started
    await agent_says(api, adapter, by["c"]["id"], "running", "succeeded")
    await settle(app)
    _, by = await exam_run(api, er["id"])
    assert by["d"]["state"] == "pending"  # all_done: b failed, c succeeded


async def test_cycles_and_missing_nodes_are_refused(api: httpx.AsyncClient, tmp_path: Path) -> None:
    ids = await make_dag(api, tmp_path, {"a": ["b"], "b": ["c"], "c": []})
    op = (await ok(await api.get(f"{SP}/operators/tabular")))["id"]
    body = {"nodeId": ids["c"], "operatorId": op, "dataSourceIds": [], "nextNodeIds": [ids["a"]]}
    body["dataSourceIds"] = [s["id"] for s in await ok(await api.get(f"{SP}/sources"))]
    resp = await api.post(RELATION, json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["msg"] == "nextNodeIds would make a cycle: c -> a -> b -> c"
    assert resp.json()["errors"][0]["field"] == "nextNodeIds"
    legacy = await api.post(RELATION, json={**body, "nextNodeIds": [], "nextNodeId": ids["b"]})
    assert legacy.status_code == 422 and legacy.json()["msg"] == "nextNodeId would make a cycle: c -> b -> c"
    own = await api.post(RELATION, json={**body, "nextNodeIds": [ids["c"]]})
    assert own.status_code == 422 and "cycle: c -> c" in own.json()["msg"]
    missing = await api.post(RELATION, json={**body, "nextNodeIds": [987654]})
    assert missing.status_code == 422 and missing.json()["msg"] == "next node 987654 does not exist"
    assert missing.json()["errors"][0]["field"] == "nextNodeIds"
    node = await ok(await api.get(f"{SP}/nodes/c"))
    assert node["relation"]["nextNodeIds"] == []  # nothing stored


async def test_a_downstream_spec_is_bound_at_dispatch(
    app: FastAPI, api: httpx.AsyncClient, adapter: Launches, tmp_path: Path
) -> None:
    await make_dag(api, tmp_path, {"train": ["evaluate"], "evaluate": []})
    er = await start(api)
    _, by = await exam_run(api, er["id"])
    await ok(await api.patch(f"{SP}/operators/tabular", json={"codeVersion": "v2", "operatorEpoch": 7}))
    await agent_says(api, adapter, by["train"]["id"], "running", "succeeded")
    await settle(app)
    evaluate = by["evaluate"]["id"]
    spec = await ok(await api.get(f"{AG}/{evaluate}/spec", headers=adapter.auth(evaluate)))
    assert (spec["operator"]["codeVersion"], spec["operator"]["operatorEpoch"]) == ("v2", 7)
    assert spec["runId"] == evaluate and spec["examRunId"] == er["id"] and spec["attempt"] == 1
    assert spec["model"]["modelVersion"]  # the reservation made at dispatch is kept in the spec


async def test_resume_reruns_the_failed_nodes_with_the_code_as_it_is_now(
    app: FastAPI, api: httpx.AsyncClient, adapter: Launches, tmp_path: Path
) -> None:
    await make_dag(
        api, tmp_path, {"train": ["evaluate", "report"], "evaluate": ["publish"], "report": [], "publish": []}
    )
    er = await start(api)
    _, by = await exam_run(api, er["id"])
    busy = await api.post(f"{ER}/{er['id']}/resume")
    assert busy.status_code == 409 and busy.json()["msg"] == (
        f"exam run {er['id']} is running: only a failed or stopped exam run can be resumed"
    )
    await agent_says(api, adapter, by["train"]["id"], "running", "succeeded")
    await settle(app)
    await agent_says(api, adapter, by["report"]["id"], "running", "succeeded")
    await agent_says(api, adapter, by["evaluate"]["id"], "running", "failed")
    await settle(app)
    er, by = await exam_run(api, er["id"])
    assert er["state"] == "failed" and by["publish"]["state"] == "skipped"
    train_before = await ok(await api.get(f"/api/v1/runs/{by['train']['id']}"))

    await ok(await api.patch(f"{SP}/operators/tabular", json={"codeVersion": "fixed"}))
    resumed = await ok(await api.post(f"{ER}/{er['id']}/resume"))
    assert resumed["state"] == "running" and resumed["resumes"] == 1
    by = {r["nodeName"]: r for r in resumed["runs"]}
    evaluate, publish = by["evaluate"], by["publish"]
    assert (evaluate["state"], evaluate["attempt"], evaluate["reason"]) == (
        "pending",
        2,
        f"resume of exam run {er['id']}",
    )
    assert (publish["state"], publish["attempt"]) == ("queued", 2)
    assert len(adapter.launches[evaluate["id"]]) == 2
    spec = await ok(await api.get(f"{AG}/{evaluate['id']}/spec", headers=adapter.auth(evaluate["id"])))
    assert spec["operator"]["codeVersion"] == "fixed" and spec["attempt"] == 2
    for name in ("train", "report"):  # succeeded nodes are kept, not run again
        assert by[name]["state"] == "succeeded" and by[name]["attempt"] == 1
        assert len(adapter.launches[by[name]["id"]]) == 1
    train_after = await ok(await api.get(f"/api/v1/runs/{by['train']['id']}"))
    assert train_after["history"] == train_before["history"]
    history = await ok(await api.get(f"/api/v1/runs/{evaluate['id']}"))
    assert [h["toState"] for h in history["history"]][-3:] == ["failed", "queued", "pending"]

    await agent_says(api, adapter, evaluate["id"], "running", "succeeded")
    await settle(app)
    await agent_says(api, adapter, publish["id"], "running", "succeeded")
    await settle(app)
    final, _ = await exam_run(api, er["id"])
    assert final["state"] == "succeeded"


async def test_stop_and_another_space(
    app: FastAPI, api: httpx.AsyncClient, adapter: Launches, tmp_path: Path
) -> None:
    await make_dag(api, tmp_path, {"a": ["b"], "b": []})
    er = await start(api)
    stopped = await ok(await api.post(f"{ER}/{er['id']}/stop", json={"reason": "enough"}))
    assert stopped["state"] == "stopped" and {r["state"] for r in stopped["runs"]} == {"stopped"}
    resumed = await ok(await api.post(f"{ER}/{er['id']}/resume"))
    assert [r["state"] for r in resumed["runs"]] == ["pending", "queued"]

    with app.state.orchestrator.store.transaction() as ses:
        bob = users.create_user(ses, "bob", admin=False)
        token = users.issue_token(ses, bob, "cli", expires_at=None).secret
    hdr = {"authorization": f"Bearer {token}"}
    for path in (f"{ER}/{er['id']}", f"{ER}/987654"):
        got = await api.get(path, headers=hdr)
        assert got.status_code == 404 and got.json()["msg"].endswith("does not exist")
    hidden = await api.post(f"{ER}/{er['id']}/resume", headers=hdr)
    assert hidden.status_code == 404 and hidden.json()["msg"] == f"exam run {er['id']} does not exist"
    assert (await ok(await api.get(ER, headers=hdr)))["total"] == 0


def test_graph_order_cycles_and_rules() -> None:
    assert graph.order([4, 3, 2, 1], [(1, 3), (2, 3), (3, 4)]) == [1, 2, 3, 4]
    assert graph.cycle([(1, 2), (2, 3)]) is None
    assert graph.cycle([(1, 2), (2, 3), (3, 1), (3, 4)]) == [1, 2, 3, 1]
    assert graph.cycle([(7, 7)]) == [7, 7]
    with pytest.raises(ValueError, match="cycle"):
        graph.order([1, 2], [(1, 2), (2, 1)])
    up = graph.Upstream
    ok_, failed, cached = up("a", "succeeded"), up("b", "failed"), up("c", "skipped", "cached: run 3")
    skipped, running = up("d", "skipped", "upstream x failed"), up("e", "running")
    assert graph.decide("all_success", [ok_, running]).action == "wait"
    assert graph.decide("all_success", [ok_, cached]) == graph.Decision("run", "upstream a, c succeeded")
    assert (
        graph.decide("all_success", [ok_, skipped]).reason == "upstream d skipped (trigger rule all_success)"
    )
    assert graph.decide("all_done", [failed, skipped]).action == "run"
    assert graph.decide("one_failed", [ok_, failed]).reason == "upstream b failed (trigger rule one_failed)"
    assert graph.decide("one_failed", [ok_, skipped]).action == "skip"
    assert graph.decide("all_done", [ok_], missing=1).action == "skip"
