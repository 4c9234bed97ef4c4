"""A run that fails mid-way reports the stage it was in and the rows it had read, to the real control app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi import FastAPI

from control import launch
from control import schemas as s
from control.api.app import create_app
from control.client import AsyncControlClient
from control.settings import Settings
from runtime_agent.api import Operator
from runtime_agent.callbacks import ControlCallbacks
from runtime_agent.runner import run_task
from runtime_agent.settings import AgentSettings
from tests.control.factory import LAMP, SP, ok


class FailsOnThirdBatch(Operator):
    """Raises in operateExecute on its third batch."""

    def __init__(self) -> None:
        self.batches = 0

    def operateExecute(self, batch: pd.DataFrame, ctx: Any) -> None:  # noqa: N802 - the seed's hook name
        self.batches += 1
        if self.batches == 3:
            raise RuntimeError("loss is NaN\nsecond line of detail")


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = Settings(
        home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'atom.db'}", heartbeat_timeout=60
    )
    application = create_app(settings, reconcile=False)
    async with application.router.lifespan_context(application):
        yield application


async def _define(api: httpx.AsyncClient, data: Path) -> int:
    await ok(await api.put(SP, json={"spaceName": "default"}))
    await ok(
        await api.put(
            f"{SP}/connections/files",
            json={"connectName": "files", "connectType": "FILE", "connectAddr": str(data)},
        )
    )
    src = await ok(
        await api.put(
            f"{SP}/sources/train",
            json={
                "sourceName": "train",
                "connectionName": "files",
                "sourceType": "source",
                "operateExecute": "train.csv",
                "dataFormat": "csv",
                "operatorReadNum": 400,
            },
        )
    )
    op = await ok(
        await api.put(
            f"{SP}/operators/breaks",
            json={
                "operatorName": "breaks",
                "operatorRuntimeType": "PYTHON_DATA",
                "moduleName": __name__,
                "executeObject": "FailsOnThirdBatch",
            },
        )
    )
    node = await ok(
        await api.put(f"{SP}/nodes/breaks", json={"nodeName": "breaks", "operatorRuntimeType": "PYTHON_DATA"})
    )
    await ok(
        await api.post(
            f"{LAMP}/node/createNodeRelation",
            json={"nodeId": node["id"], "operatorId": op["id"], "dataSourceIds": [src["id"]]},
        )
    )
    await ok(await api.patch(f"{SP}/nodes/breaks", json={"nodeStatus": "EDIT_FINISH"}))
    return int(node["id"])


async def test_failure_names_the_stage_and_rows_read(app: FastAPI, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"x": range(2000), "y": [i % 2 for i in range(2000)]}).to_csv(
        data / "train.csv", index=False
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://control") as api:
        node_id = await _define(api, data)
        orch = app.state.orchestrator
        run, token = await orch.db(
            lambda ses: launch.start_node(session=ses, event=s.TaskEvent(task_id=node_id), adapter="local")
        )
        settings = AgentSettings(
            control_url="http://control",
            run_id=run.id,
            data_dir=tmp_path / "agent" / "data",
            model_dir=tmp_path / "agent" / "model",
            log_dir=tmp_path / "agent" / "logs",
            summary_dir=tmp_path / "agent" / "summary",
            share_dir=tmp_path / "agent" / "share",
            heartbeat_interval=3600,
        )
        async with AsyncControlClient("http://control", token=token, transport=transport) as client:
            outcome = await run_task(settings, ControlCallbacks(client, run.id))

        expected = (
            "failed in stage read source 'train' after 1,200 rows: "
            "operator failed in operateExecute: RuntimeError: loss is NaN"
        )
        assert outcome.state == s.RunState.FAILED and outcome.reason == expected
        shown = await ok(await api.get(f"/api/v1/runs/{run.id}"))
        assert shown["state"] == "failed" and shown["reason"] == expected
        assert shown["rowsRead"] == 1200 and shown["stage"] == "read train"
        assert [h["toState"] for h in shown["history"]] == ["queued", "running", "failed"]
        spec = await ok(await api.get(f"/api/v1/runs/{run.id}/spec"))
        [source] = spec["sources"]
        assert source["rowsRead"] == 1200 and source["rowsTotal"] is None  # the read never reached its end
