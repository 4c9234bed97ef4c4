"""How reconcile ends a run its target reports on: a certain end (an image that cannot be pulled)
fails the run at once, even in the grace period after control started; a stopped run's last log
copy waits until its target has ended (a pod still runs its SIGTERM handler after the stop).
The adapter here is a stand-in whose state the test sets (what the Kubernetes adapter reports is
tested in tests/control/dispatch/test_k8s_endings.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from control.dispatch.base import Adapter, Admission, Observed, RunDescription
from tests.control.factory import LAMP, define_node, ok

PULL = "image atom-no-such:0 could not be pulled: Back-off pulling image"


class Remote(Adapter):
    """A remote target: its agent's state, its log and whether it has ended are what the test says."""

    name = "remote"

    def __init__(self) -> None:
        self.seen = Observed(alive=True)
        self.log = ""
        self.ended = False
        self.released: list[str] = []

    async def _start(self, desc: RunDescription, admission: Admission) -> str:
        return f"remote:{desc.ident}"

    async def _stop(self, external_id: str, *, grace: float) -> None:
        self.seen = Observed(alive=False, exit_code=None, detail="the Job is gone")

    async def _describe(self, external_id: str) -> Observed:
        return self.seen

    async def _logs(self, external_id: str) -> str | None:
        return self.log

    async def _settled(self, external_id: str) -> bool:
        return self.ended

    async def _release(self, external_id: str) -> None:
        self.released.append(external_id)


async def started(app: FastAPI, api: httpx.AsyncClient, tmp_path: Path) -> tuple[Remote, dict[str, Any]]:
    adapter = Remote()
    orch = app.state.orchestrator
    orch.adapters["remote"] = adapter
    orch.place_run = lambda session, spec: "remote"
    d = await define_node(api, data_dir=str(tmp_path))
    body = await ok(await api.post(f"{LAMP}/taskEvent/startNodeTask", json={"taskId": d["node"]["id"]}))
    (run_id,) = body["runIds"]

    async def dispatched() -> dict[str, Any] | None:
        run = await ok(await api.get(f"/api/v1/runs/{run_id}"))
        return run if run.get("externalId") else None

    for _ in range(200):
        run = await dispatched()
        if run:
            return adapter, run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} was never dispatched")


async def test_a_certain_end_fails_the_run_in_the_grace_period(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    adapter, run = await started(app, api, tmp_path)
    reconciler = app.state.reconciler  # started just now: 30 s of grace (heartbeat_timeout)
    adapter.seen = Observed(alive=False, detail="the Job is gone")  # unsure: the agent may report
    await reconciler.reconcile_once()
    assert (await ok(await api.get(f"/api/v1/runs/{run['id']}")))["state"] == "pending"
    adapter.seen = Observed(alive=False, detail=PULL, certain=True)
    await reconciler.reconcile_once()
    got = await ok(await api.get(f"/api/v1/runs/{run['id']}"))
    assert got["state"] == "failed" and got["reason"] == PULL, got["reason"]


async def test_a_stopped_runs_last_log_copy_waits_for_its_target_to_end(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    adapter, run = await started(app, api, tmp_path)
    reconciler = app.state.reconciler
    adapter.log = "waiting to be stopped\n"
    await reconciler.reconcile_once()
    await ok(await api.post(f"/api/v1/runs/{run['id']}/stop"))
    await reconciler.reconcile_once()  # the pod still runs its SIGTERM handler
    assert adapter.released == [] and "waiting to be stopped" in await log_of(api, run["id"])
    adapter.log += "stop requested: stopped by SIGTERM\n"
    adapter.ended = True
    await reconciler.reconcile_once()
    assert adapter.released == [run["externalId"]]
    assert "stopped by SIGTERM" in await log_of(api, run["id"])
    adapter.log += "after the end\n"  # copied once: nothing more is read
    await reconciler.reconcile_once()
    assert "after the end" not in await log_of(api, run["id"])


async def log_of(api: httpx.AsyncClient, run_id: int) -> str:
    return str((await ok(await api.get(f"/api/v1/runs/{run_id}/logs")))["text"])
