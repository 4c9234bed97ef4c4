"""A dispatch that takes long (control's Ray head coming up under load) is not judged by reconcile."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from fastapi import FastAPI

from control.dispatch.base import Adapter, Admission, Observed, RunDescription
from tests.control.factory import LAMP, define_node, ok


class SlowAdapter(Adapter):
    """Starts nothing until `go` is set (a head that takes its time); then says the agent lives."""

    name = "local"

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.entered = asyncio.Event()

    async def _start(self, desc: RunDescription, admission: Admission) -> str:
        self.entered.set()
        await self.go.wait()
        return f"slow:{desc.ident}"

    async def _stop(self, external_id: str, *, grace: float) -> None:
        return None

    async def _describe(self, external_id: str) -> Observed:
        return Observed(alive=True)


async def test_a_run_being_dispatched_is_not_failed_as_never_dispatched(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    slow = SlowAdapter()
    app.state.orchestrator.adapters["local"] = slow
    app.state.reconciler.heartbeat_timeout = 0.2
    d = await define_node(api, data_dir=str(tmp_path))
    start = asyncio.create_task(api.post(f"{LAMP}/taskEvent/startNodeTask", json={"taskId": d["node"]["id"]}))
    await asyncio.wait_for(slow.entered.wait(), 10)
    await asyncio.sleep(0.3)  # older than the (tiny) heartbeat timeout while its start is under way
    await app.state.reconciler.reconcile_once()
    (run,) = (await ok(await api.get("/api/v1/runs")))["items"]
    assert run["state"] == "queued", run["reason"]
    slow.go.set()
    await ok(await start)
    run = await ok(await api.get(f"/api/v1/runs/{run['id']}"))
    assert run["state"] == "pending" and run["externalId"] == f"slow:{run['id']}"
