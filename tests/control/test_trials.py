"""Trials of a run's hyper-parameter search: the agent upserts them with its run token, users list
them best first, other spaces see a 404; a bad searchConf is refused naming its field, storing nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from control import launch
from control import schemas as s
from control.client import AsyncControlClient
from control.schemas.pipeline import SearchConf
from control.schemas.trials import TrialReport, TrialState
from tests.control.factory import SP, define_node, ok
from tests.control.test_tenancy import add_tenant, add_users, auth, same_404

SEARCH = {
    "space": {
        "lr": {"_type": "loguniform", "_value": [0.0001, 0.1]},
        "layers": {"_type": "randint", "_value": [1, 4]},
    },
    "metric": "loss",
    "mode": "min",
    "trials": 3,
    "concurrency": 2,
    "scheduler": "asha",
    "gracePeriod": 1,
}
OPERATOR = {
    "operatorName": "tabular",
    "operatorRuntimeType": "TRAIN",
    "moduleName": "runtime_agent.examples.train_example",
    "executeObject": "TrainExample",
}


async def searched_run(app: FastAPI, api: httpx.AsyncClient, tmp_path: Path) -> tuple[int, str]:
    d = await define_node(api, data_dir=str(tmp_path))
    await ok(await api.put(f"{SP}/operators/tabular", json={**OPERATOR, "searchConf": SEARCH}))
    orch = app.state.orchestrator
    event = s.TaskEvent(task_id=d["node"]["id"])
    run, token = await orch.db(lambda ses: launch.start_node(session=ses, event=event, adapter="local"))
    return run.id, token


def trial(trial_id: str, lr: float, state: str, history: list[list[float]], **extra: Any) -> dict[str, Any]:
    return {
        "trialId": trial_id,
        "params": {"lr": lr, "layers": 2},
        "state": state,
        "metrics": {"loss": history[-1][1], "epoch": len(history)} if history else {},
        "history": history,
        "score": history[-1][1] if history else None,
        **extra,
    }


async def test_trials_are_upserted_by_id_and_listed_best_first(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    run_id, token = await searched_run(app, api, tmp_path)
    url = f"/api/v1/runs/{run_id}/trials"
    agent = {"Authorization": f"Bearer {token}"}
    first = [trial("t0", 0.01, "running", [[1, 0.9]]), trial("t1", 0.001, "running", [[1, 1.5]])]
    assert await ok(await api.post(url, json=first, headers=agent)) == {"stored": 2}
    assert await ok(await api.post(url, json=first, headers=agent)) == {"stored": 2}  # again: no new rows
    listed = await ok(await api.get(url))
    assert listed["runId"] == run_id and listed["metric"] == "loss" and listed["mode"] == "min"
    assert [t["trialId"] for t in listed["items"]] == ["t0", "t1"]  # lower loss first (mode min)

    final = [
        trial("t0", 0.01, "succeeded", [[1, 0.9], [2, 0.4], [3, 0.2]], best=True),
        trial("t1", 0.001, "stopped", [[1, 1.5]]),
        trial("t2", 0.1, "failed", []),
    ]
    await ok(await api.post(url, json=final, headers=agent))
    items = (await ok(await api.get(url)))["items"]
    assert [(t["trialId"], t["state"], t["best"], t["score"]) for t in items] == [
        ("t0", "succeeded", True, 0.2),
        ("t1", "stopped", False, 1.5),
        ("t2", "failed", False, None),
    ]
    assert items[0]["history"] == [[1, 0.9], [2, 0.4], [3, 0.2]]
    assert items[0]["params"] == {"lr": 0.01, "layers": 2}
    assert items[0]["metrics"] == {"loss": 0.2, "epoch": 3}

    # a later best moves the flag: one best per run
    await ok(
        await api.post(url, json=[trial("t1", 0.001, "succeeded", [[1, 0.1]], best=True)], headers=agent)
    )
    items = (await ok(await api.get(url)))["items"]
    assert [t["trialId"] for t in items if t["best"]] == ["t1"]
    assert len(items) == 3

    # the client's calls (the agent's and the user's) speak the same wire
    async with AsyncControlClient("http://control", token=token, transport=httpx.ASGITransport(app=app)) as c:
        report = TrialReport(
            trial_id="t3", params={"lr": 0.05}, state="running", history=[(1, 0.7)], score=0.7
        )
        assert await c.report_trials(run_id, [report]) == 1
    async with AsyncControlClient("http://control", transport=httpx.ASGITransport(app=app)) as user:
        page = await user.run_trials(run_id)
    assert {t.trial_id for t in page.items} == {"t0", "t1", "t2", "t3"}
    assert page.items[0].trial_id == "t1" and page.items[0].best


async def test_reports_need_the_runs_own_token_and_a_sane_body(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    run_id, token = await searched_run(app, api, tmp_path)
    url = f"/api/v1/runs/{run_id}/trials"
    body = [trial("t0", 0.01, "running", [[1, 0.9]])]
    assert (await api.post(url, json=body)).status_code == 401
    assert (await api.post(url, json=body, headers={"Authorization": "Bearer nope"})).status_code == 401
    agent = {"Authorization": f"Bearer {token}"}
    bad = await api.post(url, json=[{**body[0], "state": "exploded"}], headers=agent)
    assert bad.status_code == 422 and "state" in bad.text
    twice = await api.post(url, json=body * 2, headers=agent)
    assert twice.status_code == 422 and "trialId" in twice.text
    assert (await ok(await api.get(url)))["items"] == []


async def test_another_spaces_trials_answer_as_a_missing_run(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    tokens = add_users(app)
    a = await add_tenant(api, app, tokens["alice"], "a", tmp_path)
    b = await add_tenant(api, app, tokens["bob"], "b", tmp_path)
    report = [trial("t0", 0.01, "succeeded", [[1, 0.3]], best=True)]
    await ok(await api.post(f"/api/v1/runs/{b.run_id}/trials", json=report, headers=auth(b.run_token)))
    mine = await ok(await api.get(f"/api/v1/runs/{b.run_id}/trials", headers=auth(tokens["bob"])))
    assert [t["trialId"] for t in mine["items"]] == ["t0"]
    hidden = await api.get(f"/api/v1/runs/{b.run_id}/trials", headers=auth(tokens["alice"]))
    missing = await api.get("/api/v1/runs/999999/trials", headers=auth(tokens["alice"]))
    same_404(hidden, missing, b.run_id, 999999)
    # a run token opens only its own run
    other = await api.post(f"/api/v1/runs/{b.run_id}/trials", json=report, headers=auth(a.run_token))
    assert other.status_code == 401


@pytest.mark.parametrize(
    ("search", "field", "words"),
    [
        ({**SEARCH, "space": {"lr": {"_type": "uniform", "_value": [1]}}}, "searchConf.space", "lr._value"),
        ({**SEARCH, "space": {"lr": {"_type": "gauss", "_value": [0, 1]}}}, "searchConf.space", "lr._type"),
        ({**SEARCH, "space": {"lr": [0.1, 0.2]}}, "searchConf.space", "lr: must be"),
        ({**SEARCH, "space": {}}, "searchConf.space", "non-empty"),
        ({**SEARCH, "mode": "maximize"}, "searchConf.mode", ""),
        ({**SEARCH, "trials": 0}, "searchConf.trials", ""),
        ({**SEARCH, "scheduler": "hyperband"}, "searchConf.scheduler", ""),
        ({k: v for k, v in SEARCH.items() if k != "metric"}, "searchConf.metric", "required"),
        ({**SEARCH, "colour": "red"}, "searchConf.colour", "unknown field"),
    ],
)
async def test_a_bad_search_conf_is_refused_naming_its_field(
    api: httpx.AsyncClient, search: dict[str, Any], field: str, words: str
) -> None:
    await ok(await api.put(SP, json={"spaceName": "default"}))
    created = await api.post(f"{SP}/operators", json={**OPERATOR, "searchConf": search})
    assert created.status_code == 422, created.text
    errors = {e["field"]: e["msg"] for e in created.json()["errors"]}
    assert field in errors, errors
    assert words in errors[field]
    assert field in created.json()["msg"]
    assert (await api.get(f"{SP}/operators/tabular")).status_code == 404  # nothing stored

    await ok(await api.put(f"{SP}/operators/tabular", json={**OPERATOR, "searchConf": SEARCH}))
    replaced = await api.put(f"{SP}/operators/tabular", json={**OPERATOR, "searchConf": search})
    assert replaced.status_code == 422 and field in {e["field"] for e in replaced.json()["errors"]}
    stored = await ok(await api.get(f"{SP}/operators/tabular"))
    assert stored["searchConf"]["space"] == SEARCH["space"]  # the earlier, valid search is kept


async def test_a_search_conf_reaches_the_task_spec_and_null_clears_it(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    run_id, token = await searched_run(app, api, tmp_path)
    spec = await ok(
        await api.get(f"/api/v1/agent/runs/{run_id}/spec", headers={"Authorization": f"Bearer {token}"})
    )
    conf = SearchConf.model_validate(spec["operator"]["searchConf"])
    assert conf.metric == "loss" and conf.scheduler == "asha" and conf.grace_period == 1
    assert conf.space == SEARCH["space"]
    await ok(await api.put(f"{SP}/operators/tabular", json={**OPERATOR, "searchConf": None}))
    assert (await ok(await api.get(f"{SP}/operators/tabular")))["searchConf"] is None


async def test_the_agents_callbacks_deliver_trials_to_the_route(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    from runtime_agent.callbacks import ControlCallbacks

    run_id, token = await searched_run(app, api, tmp_path)
    client = AsyncControlClient("http://control", token=token, transport=httpx.ASGITransport(app=app))
    callbacks = ControlCallbacks(client, run_id)
    try:
        running = TrialReport(trial_id="x_0", params={"lr": 0.1}, history=[(1, 0.5)], score=0.5)
        await callbacks.report_trials([running])
        done = TrialReport(
            trial_id="x_0",
            params={"lr": 0.1},
            state=TrialState.SUCCEEDED,
            history=[(1, 0.5), (2, 0.25)],
            score=0.25,
            best=True,
        )
        await callbacks.report_trials([done])
    finally:
        await callbacks.aclose()
    [item] = (await ok(await api.get(f"/api/v1/runs/{run_id}/trials")))["items"]
    assert (item["trialId"], item["state"], item["best"], item["score"]) == ("x_0", "succeeded", True, 0.25)
    assert item["history"] == [[1, 0.5], [2, 0.25]]
