"""Local runs as control dispatches them: a built environment, CPU affinity and a memory cgroup, and
GPUs one run each (a run waits `pending: waiting for 1 GPU (0 free)` and starts when one frees)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from control.client import AsyncControlClient
from control.dispatch.local_limits import MemoryCgroups
from control.schemas import TaskEvent
from tests.control.factory import SP, define_node, ok
from tests.e2e.conftest import LiveControl, make_tabular, run_state, wait_for

pytestmark = pytest.mark.e2e

ENDED = ("succeeded", "failed", "stopped")
SECRET = "OSS_ACCESS_KEY_SECRET"


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if item and b"=" in item)


def _pid(external_id: str | None) -> int:
    assert external_id and external_id.startswith("pid:"), external_id
    return int(external_id.split(":")[1])


async def test_a_local_agent_gets_a_built_environment_and_its_limits(
    live_settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET, "do-not-leak-9876")
    monkeypatch.setenv("SHARED_DATASET", "/mnt/shared")
    make_tabular(tmp_path / "data", rows=50)
    release = tmp_path / "release"
    with LiveControl(live_settings) as live:
        try:
            async with (
                httpx.AsyncClient(base_url=live.url, timeout=60) as api,
                AsyncControlClient(live.url) as client,
            ):
                d = await define_node(
                    api,
                    data_dir=str(tmp_path / "data"),
                    module="tests.e2e.operators",
                    cls="WaitForFile",
                    deploy="NOT_DEPLOY",
                )
                await ok(
                    await api.patch(
                        f"{SP}/operators/tabular",
                        json={
                            "operatorConf": {"releaseFile": str(release)},
                            "environmentConf": {"env": {"FEATURE_FLAG": "on"}, "passEnv": ["SHARED_DATASET"]},
                        },
                    )
                )
                await ok(await api.patch(f"{SP}/service-infos/small", json={"siCpu": 1, "siMemory": 768}))
                run_id = (await client.start_node_task(TaskEvent(task_id=d["node"]["id"]))).run_ids[0]
                run = await wait_for(
                    lambda: run_state(client, run_id, ("running",) + ENDED), timeout=60, what="running"
                )
                assert run.state.value == "running", run.reason
                pid = _pid(run.external_id)
                env = _environ(pid)
                assert SECRET not in env and "ATOM_DB_URL" not in env
                assert env["FEATURE_FLAG"] == "on" and env["SHARED_DATASET"] == "/mnt/shared"
                assert env["ATOM_RUN_ID"] == str(run_id) and env["ATOM_MODEL_VERSION"] == "1"
                assert env["ATOM_MODEL_NAME"] == "tabular" and env["ATOM_NODE_NAME"] == "train-tabular"
                assert env["CUDA_VISIBLE_DEVICES"] == ""  # no GPU asked: none visible
                if (os.cpu_count() or 1) > 1:
                    assert len(os.sched_getaffinity(pid)) == 1
                described = await ok(await api.get(f"/api/v1/runs/{run_id}"))
                granted = described["dispatch"]["granted"]
                assert granted["memoryMib"] == 768 and len(granted["cpus"]) == (
                    1 if (os.cpu_count() or 1) > 1 else 0
                )
                if MemoryCgroups().available:
                    cgroup = await asyncio.to_thread(Path(f"/proc/{pid}/cgroup").read_text)
                    assert f"run-{run_id}-" in cgroup, cgroup
                release.touch()
                run = await wait_for(lambda: run_state(client, run_id, ENDED), timeout=60, what="the end")
                assert run.state.value == "succeeded", run.reason
        finally:
            live.kill_started()


async def test_gpus_go_to_one_run_each_and_a_run_waits_for_a_free_one(
    live_settings: Any, tmp_path: Path
) -> None:
    live_settings.local_gpus = "1"  # one GPU as far as the local adapter knows: no CUDA needed to hand it out
    make_tabular(tmp_path / "data", rows=50)
    with LiveControl(live_settings) as live:
        try:
            async with (
                httpx.AsyncClient(base_url=live.url, timeout=60) as api,
                AsyncControlClient(live.url) as client,
            ):
                await ok(await api.put(SP, json={"spaceName": "default"}))
                ids = {}
                for name in ("first", "second", "greedy"):
                    d = await define_node(
                        api,
                        data_dir=str(tmp_path / "data"),
                        node=name,
                        module="tests.e2e.operators",
                        cls="WaitForFile",
                        deploy="NOT_DEPLOY",
                    )
                    ids[name] = d["node"]["id"]
                await ok(
                    await api.patch(
                        f"{SP}/operators/tabular",
                        json={"operatorConf": {"releaseFile": str(tmp_path / "go")}},
                    )
                )
                await ok(await api.patch(f"{SP}/service-infos/small", json={"siGpu": 1, "siMemory": 0}))
                first = (await client.start_node_task(TaskEvent(task_id=ids["first"]))).run_ids[0]
                second = (await client.start_node_task(TaskEvent(task_id=ids["second"]))).run_ids[0]
                run1 = await wait_for(
                    lambda: run_state(client, first, ("running",) + ENDED), timeout=60, what="run 1"
                )
                assert run1.state.value == "running", run1.reason
                assert _environ(_pid(run1.external_id))["CUDA_VISIBLE_DEVICES"] == "0"
                run2 = await client.get_run(second)
                assert run2.state.value == "pending" and run2.reason == "waiting for 1 GPU (0 free)"
                assert run2.external_id is None

                await ok(await api.patch(f"{SP}/service-infos/small", json={"siGpu": 2}))
                resp = await api.post(
                    "/lamp/atom/service/operator/taskEvent/startNodeTask", json={"taskId": ids["greedy"]}
                )
                assert resp.status_code == 422, resp.text
                assert resp.json()["msg"] == "needs 2 GPU; this host (local adapter) has 1"

                (tmp_path / "go").touch()  # run 1 ends, its GPU frees, run 2 starts by itself
                run1 = await wait_for(
                    lambda: run_state(client, first, ENDED), timeout=60, what="run 1 to end"
                )
                assert run1.state.value == "succeeded", run1.reason
                run2 = await wait_for(
                    lambda: run_state(client, second, ENDED), timeout=90, what="run 2 to end"
                )
                assert run2.state.value == "succeeded", run2.reason
                history = [(t.to_state.value, t.reason) for t in run2.history]
                assert ("pending", "waiting for 1 GPU (0 free)") in history
                assert any(r.startswith("started by local adapter") for _, r in history)
        finally:
            live.kill_started()
