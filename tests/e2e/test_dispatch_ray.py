"""A whole run through the Ray adapter, on the suite's shared Ray head: sources, training, sink,
model version and the auto-deployed service answering; the agent's environment is built, not
inherited; `describe run` shows the adapter, the Ray job id and the resources."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from control.client import AsyncControlClient
from control.schemas import TaskEvent
from tests.control.factory import SP, define_node, ok
from tests.e2e.conftest import (
    LiveControl,
    infer_test_rows,
    make_tabular,
    run_state,
    service_key,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.ray, pytest.mark.slow]

SECRET = "AWS_SECRET_ACCESS_KEY"
MODULE = "tests.e2e.dispatch_operators"
WANTED = {"ATOM_RUN_ID", "ATOM_RUN_TOKEN", "ATOM_MODEL_VERSION", "ATOM_TRAINING_SPEED"}


@pytest.fixture
def ray_settings(live_settings: Any, ray_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(SECRET, "not-for-agents-1234")
    monkeypatch.setenv("ATOM_TRAINING_SPEED", "fast")  # an ATOM_ knob: agents get it
    live_settings.ray_address = ray_cluster.address
    live_settings.ray_dashboard_url = ray_cluster.dashboard_url
    return live_settings


def _env_names(log: str) -> list[str]:
    match = re.search(r"ENVNAMES (\[.*?\])", log)
    assert match, log[-2000:]
    return list(json.loads(match.group(1)))


async def test_a_run_through_the_ray_adapter(tmp_path: Path, ray_settings: Any) -> None:
    make_tabular(tmp_path / "data", rows=300)
    with LiveControl(ray_settings) as live:
        try:
            async with (
                httpx.AsyncClient(base_url=live.url, timeout=60) as api,
                AsyncControlClient(live.url) as client,
            ):
                d = await define_node(
                    api,
                    data_dir=str(tmp_path / "data"),
                    module="tests.e2e.dispatch_operators",
                    cls="TrainShowingEnv",
                )
                await ok(
                    await api.patch(
                        f"{SP}/service-infos/small",
                        json={"siRuntimePattern": "RAY", "siCpu": 1, "siMemory": 2048},
                    )
                )
                started = await client.start_node_task(TaskEvent(task_id=d["node"]["id"]))
                run_id = started.run_ids[0]
                run = await wait_for(
                    lambda: run_state(client, run_id, ("succeeded", "failed", "stopped")),
                    timeout=180,
                    what="the Ray run to end",
                )
                assert run.state.value == "succeeded", run.reason
                assert run.adapter == "ray" and run.external_id and run.external_id.startswith("atom-run-")
                described = await ok(await api.get(f"/api/v1/runs/{run_id}"))
                assert described["dispatch"]["resources"]["cpu"] == 1
                assert described["dispatch"]["granted"]["entrypoint"]["CPU"] == 1

                model = await ok(await api.get(f"{SP}/models/tabular"))
                assert [v["modelVersion"] for v in model["versions"]] == ["1"]
                predictions = pd.read_csv(tmp_path / "data" / "predictions.csv")
                assert len(predictions) == 60

                log = await wait_for(
                    lambda: _read(run.log_path if hasattr(run, "log_path") else None, live, run_id),
                    timeout=30,
                    what="the Ray job's log in the run's log",
                )
                names = _env_names(log)
                assert SECRET not in names and "ATOM_DB_URL" not in names
                assert {"ATOM_RUN_ID", "ATOM_RUN_TOKEN", "ATOM_MODEL_VERSION", "ATOM_TRAINING_SPEED"} <= set(
                    names
                )
                assert "MODEL_VERSION=1" in log

                services = await ok(await api.get("/api/v1/services"))
                svc = next(s for s in services if s["runtimeId"] == run_id)
                svc = await wait_for(
                    lambda: _service_ready(api, svc["id"]), timeout=90, what="the service to be ready"
                )
                resp = await infer_test_rows(
                    svc["endpoint"],
                    svc["serviceName"],
                    tmp_path / "data" / "test.csv",
                    key=await service_key(live.url, svc["id"]),
                )
                assert resp.status_code == 200, resp.text
                assert resp.json()["outputs"]
        finally:
            live.kill_started()


async def _service_ready(api: httpx.AsyncClient, service_id: int) -> Any:
    svc = await ok(await api.get(f"/api/v1/services/{service_id}"))
    assert svc["state"] != "failed", svc["reason"]
    return svc if svc["state"] == "ready" else None


async def _read(_: Any, live: LiveControl, run_id: int) -> str | None:
    async with httpx.AsyncClient(base_url=live.url, timeout=60) as api:
        chunk = await ok(await api.get(f"/api/v1/runs/{run_id}/logs", params={"offset": 0, "limit": 1 << 20}))
    text = str(chunk.get("text", ""))
    return text if "ENVNAMES" in text and "succeeded" in text else None


async def test_control_starts_its_own_ray_head_on_first_need_and_stops_it(
    live_settings: Any, tmp_path: Path
) -> None:
    from control.dispatch.ray import RayAdapter
    from control.dispatch.ray_head import session_pids

    make_tabular(tmp_path / "data", rows=40)
    live_settings.ray_head_cpus = 1
    with LiveControl(live_settings) as live:
        try:
            ray = live.app.state.orchestrator.adapters["ray"]
            assert isinstance(ray, RayAdapter) and ray.head is not None
            assert not ray.head.running  # nothing started before a run needs Ray
            async with (
                httpx.AsyncClient(base_url=live.url, timeout=60) as api,
                AsyncControlClient(live.url) as client,
            ):
                d = await define_node(
                    api,
                    data_dir=str(tmp_path / "data"),
                    module="tests.e2e.operators",
                    cls="CopyRows",
                    deploy="NOT_DEPLOY",
                )
                await ok(await api.patch(f"{SP}/operators/tabular", json={"operatorRuntimeType": "PYTHON"}))
                await ok(
                    await api.patch(
                        f"{SP}/service-infos/small", json={"siRuntimePattern": "RAY", "siMemory": 0}
                    )
                )
                run_id = (await client.start_node_task(TaskEvent(task_id=d["node"]["id"]))).run_ids[0]
                run = await wait_for(
                    lambda: run_state(client, run_id, ("succeeded", "failed", "stopped")),
                    timeout=120,
                    what="end",
                )
                assert run.state.value == "succeeded", run.reason
                assert ray.head.running and ray.head.address
                head_pid = ray.head.pid or 0
                assert len(pd.read_csv(tmp_path / "data" / "predictions.csv")) == 40  # train + test rows
        finally:
            live.kill_started()
    assert not ray.head.running
    assert session_pids(head_pid) == []  # no Ray process of control's head is left
