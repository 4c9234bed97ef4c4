"""A dispatched run whose target says it waits (a pod pulling its image) is not judged silent: its
agent's silence counts from the last time the target said so, not from the dispatch."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from fastapi import FastAPI

from control.dispatch.base import Adapter, Admission, Observed, RunDescription
from tests.control.factory import LAMP, define_node, ok

WAITING = "waiting for the pod to start (ContainerCreating)"


class PullingAdapter(Adapter):
    """Its agent waits for its image until `pulled`; then it lives (and has not called yet)."""

    name = "local"

    def __init__(self) -> None:
        self.pulled = False

    async def _start(self, desc: RunDescription, admission: Admission) -> str:
        return f"pulling:{desc.ident}"

    async def _stop(self, external_id: str, *, grace: float) -> None:
        return None

    async def _describe(self, external_id: str) -> Observed:
        return Observed(alive=True) if self.pulled else Observed(alive=True, waiting=WAITING)


async def test_a_long_image_pull_does_not_count_as_silence(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    adapter = PullingAdapter()
    app.state.orchestrator.adapters["local"] = adapter
    reconciler = app.state.reconciler
    reconciler.heartbeat_timeout = 0.5
    d = await define_node(api, data_dir=str(tmp_path))
    started = await ok(await api.post(f"{LAMP}/taskEvent/startNodeTask", json={"taskId": d["node"]["id"]}))
    (run_id,) = started["runIds"]
    dispatched = time.monotonic()
    while time.monotonic() - dispatched < 1.0:  # the pull outlasts the heartbeat timeout
        await reconciler.reconcile_once()
        await asyncio.sleep(0.1)
    run = await ok(await api.get(f"/api/v1/runs/{run_id}"))
    assert (run["state"], run["reason"]) == ("pending", WAITING)
    adapter.pulled = True  # the agent starts now: it has the whole timeout to call
    await reconciler.reconcile_once()
    run = await ok(await api.get(f"/api/v1/runs/{run_id}"))
    assert run["state"] == "pending", run["reason"]


async def test_an_agent_that_has_not_called_yet_gets_the_start_timeout_not_the_heartbeat_one(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    adapter = PullingAdapter()
    adapter.pulled = True  # alive at once, but slow to make its first call (imports on a busy host)
    orch = app.state.orchestrator
    orch.adapters["local"] = adapter
    reconciler = app.state.reconciler
    reconciler.heartbeat_timeout = 0.2
    reconciler.started -= 60  # no grace after a restart: only the start timeout counts
    orch.settings.agent_start_timeout = 0.8
    d = await define_node(api, data_dir=str(tmp_path))
    started = await ok(await api.post(f"{LAMP}/taskEvent/startNodeTask", json={"taskId": d["node"]["id"]}))
    (run_id,) = started["runIds"]
    await asyncio.sleep(0.3)  # past the heartbeat timeout, within the start timeout
    await reconciler.reconcile_once()
    run = await ok(await api.get(f"/api/v1/runs/{run_id}"))
    assert run["state"] == "pending", run["reason"]
    await asyncio.sleep(0.6)  # past the start timeout too
    await reconciler.reconcile_once()
    run = await ok(await api.get(f"/api/v1/runs/{run_id}"))
    assert run["state"] in ("failed", "queued"), run  # queued: retried later as a lost agent
    assert "no call from the agent since its start" in run["reason"], run["reason"]
