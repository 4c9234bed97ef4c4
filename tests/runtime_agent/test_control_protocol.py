"""The agent's side of the control protocol against a stand-in control (httpx.MockTransport): calls, order."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from pydantic import SecretStr

from control.client import AsyncControlClient
from control.schemas import ConnectionSpec, RunState, ServeSpec, TaskSpec
from runtime_agent.callbacks import ControlCallbacks
from runtime_agent.runner import run_task
from runtime_agent.serve import ModelServer, control_loader, create_app
from runtime_agent.settings import AgentSettings
from tests.runtime_agent.conftest import tabular

TOKEN = "run-token-0123456789"


class FakeControl:
    """Answers the agent's calls like control does and records them."""

    def __init__(self, spec: TaskSpec, *, stop: bool = False, serve: ServeSpec | None = None) -> None:
        self.spec = spec
        self.stop = stop
        self.serve = serve
        self.calls: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        body: Any = json.loads(request.content) if request.content else None
        path = request.url.path
        self.calls.append((request.method, path, body))
        if path.endswith("/spec") and "/services/" in path:
            assert self.serve is not None
            return httpx.Response(200, json=self.serve.wire())
        if path.endswith("/spec"):
            return httpx.Response(200, json=self.spec.wire())
        if path.endswith("/state"):
            return httpx.Response(200, json=self._run_view(body["state"]))
        if path.endswith("/heartbeat"):
            return httpx.Response(200, json={"stop": self.stop})
        if path.endswith("/metrics"):
            return httpx.Response(204)
        if path.endswith("/model-version"):
            return httpx.Response(200, json={"modelVersion": "v1", "modelVersionId": 3})
        if path.endswith("/runningAutoFinish"):
            return httpx.Response(
                200, json={"runId": self.spec.run_id, "state": "succeeded", "msg": "finished"}
            )
        return httpx.Response(404, json={"msg": f"no route {path}"})

    def _run_view(self, state: str) -> dict[str, Any]:
        return {
            "id": self.spec.run_id,
            "nodeId": self.spec.node_id,
            "nodeName": self.spec.node_name,
            "spaceId": 1,
            "operatorRuntimeType": "TRAIN",
            "adapter": "local",
            "state": state,
            "attempt": 1,
            "createdAt": datetime.now(UTC).isoformat(),
        }

    def paths(self) -> list[str]:
        return [f"{m} {p.rsplit('/', 1)[-1]}" for m, p, _ in self.calls]


def _spec(tmp_path: Path, module: str, cls: str) -> TaskSpec:
    pd.DataFrame({"x": [1.0, 2.0, 3.0]}).to_csv(tmp_path / "in.csv", index=False)
    files = {
        "connectName": "files",
        "connectType": "FILE",
        "connectAddr": str(tmp_path),
        "connectPassword": "pw-xyz",
    }
    return TaskSpec.model_validate(
        {
            "runId": 9,
            "nodeId": 4,
            "nodeName": "n",
            "operator": {
                "operatorName": "o",
                "operatorRuntimeType": "TRAIN",
                "moduleName": module,
                "executeObject": cls,
                "operatorConf": {"releaseFile": str(tmp_path / "never")},
                "modelConf": {"servingObject": "pkg.mod:Serve"},
            },
            "sources": [
                {"sourceName": "in", "sourceType": "source", "operateExecute": "in.csv", "connection": files}
            ],
            "model": {"modelName": "m", "connection": {"connectName": "models", "connectType": "FILE"}},
        }
    )


async def _run(tmp_path: Path, fake: FakeControl, interval: float = 3600) -> Any:
    settings = AgentSettings(
        control_url="http://control",
        run_token=SecretStr(TOKEN),
        run_id=9,
        data_dir=tmp_path / "data",
        model_dir=tmp_path / "model",
        log_dir=tmp_path / "logs",
        summary_dir=tmp_path / "summary",
        share_dir=tmp_path / "share",
        heartbeat_interval=interval,
    )
    client = AsyncControlClient("http://control", token=TOKEN, transport=httpx.MockTransport(fake))
    async with client:
        return await run_task(settings, ControlCallbacks(client, 9))


async def test_successful_run_calls_control_in_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeControl(_spec(tmp_path, "tests.runtime_agent.operators", "InProcessTrainer"))
    with caplog.at_level(logging.DEBUG):
        outcome = await _run(tmp_path, fake)
    assert outcome.state == RunState.SUCCEEDED, outcome.reason
    assert fake.paths() == [
        "GET spec",
        "POST state",
        "POST heartbeat",
        "POST metrics",
        "POST model-version",
        "POST heartbeat",  # the last counts (rows read) before the finish
        "POST runningAutoFinish",
    ]
    bodies = {p.rsplit("/", 1)[-1]: b for _, p, b in fake.calls}
    assert bodies["state"] == {"state": "running", "reason": bodies["state"]["reason"]}
    assert bodies["metrics"] == {"step": 1, "values": {"score": 0.75, "loss": 0.1}}
    version = bodies["model-version"]
    assert version["modelScore"] == 0.75 and version["servingObject"] == "pkg.mod:Serve"
    assert version["modelAddress"].endswith("/data/models/m/run-9/model.tar.gz")
    assert bodies["runningAutoFinish"] == {
        "taskId": 4,
        "operatorRuntimeType": "TRAIN",
        "runParameter": {"runId": "9"},
    }
    assert outcome.model_version == "v1"
    assert TOKEN not in caplog.text and "pw-xyz" not in caplog.text
    last_beat = [b for _, p, b in fake.calls if p.endswith("/heartbeat")][-1]
    assert last_beat["rowsRead"] == 3
    assert last_beat["sources"] == {"in": {"rowsRead": 3, "rowsTotal": 3}}  # read to the end: the total


async def test_failure_is_reported_with_one_line(tmp_path: Path) -> None:
    fake = FakeControl(_spec(tmp_path, "tests.runtime_agent.operators", "Explodes"))
    outcome = await _run(tmp_path, fake)
    assert outcome.exit_code == 1
    assert fake.calls[-1][1].endswith("/state")
    assert fake.calls[-1][2] == {"state": "failed", "reason": outcome.reason, "failureClass": "user"}
    assert "ValueError: column 'x' has negative values" in outcome.reason


async def test_heartbeat_stop_cancels_the_work(tmp_path: Path) -> None:
    fake = FakeControl(_spec(tmp_path, "tests.runtime_agent.operators", "WaitForFile"), stop=True)
    outcome = await _run(tmp_path, fake, interval=0.01)
    (tmp_path / "never").touch()  # let the abandoned hook thread end
    assert outcome.state == RunState.STOPPED and outcome.exit_code == 143
    assert fake.calls[-1][2] == {"state": "stopped", "reason": "stopped by user"}
    assert not any(p.endswith("runningAutoFinish") for _, p, _ in fake.calls)


async def test_serve_from_control_spec(trained_example, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    archive = Path(trained_example.model_versions[0].model_address.removeprefix("file://"))
    serve = ServeSpec(
        service_id=2,
        service_name="tabular-v1",
        model_name="tabular",
        model_version="v1",
        model_address=str(archive.relative_to(archive.parents[2])),
        connection=ConnectionSpec.model_validate(
            {"connectName": "models", "connectType": "FILE", "connectAddr": str(archive.parents[2])}
        ),
        serving_object="runtime_agent.examples.train_example:TabularReasoning",
    )
    fake = FakeControl(_spec(tmp_path, "x", "Y"), serve=serve)
    settings = AgentSettings(control_url="http://control", service_token=SecretStr(TOKEN))
    server = ModelServer(control_loader(settings, 2, transport=httpx.MockTransport(fake)))
    await server.load()
    assert fake.paths() == ["GET spec"] and "/services/2/" in fake.calls[0][1]
    app = create_app(server, load_on_startup=False)
    df = tabular(8, seed=12)
    request = {
        "inputs": [
            {"name": c, "shape": [8], "datatype": "FP64", "data": df[c].tolist()} for c in ("f0", "f1")
        ]
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as c:
        by_model = await c.post("/v2/models/tabular/versions/v1/infer", json=request)
        by_service = await c.post("/v2/models/tabular-v1/infer", json=request)
    assert by_model.status_code == 200 and by_service.status_code == 200
    assert by_model.json()["outputs"] == by_service.json()["outputs"]
