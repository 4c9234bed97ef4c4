"""A whole run through the Docker adapter on a real engine: the agent in a container of the agent
image fetches its spec from a live control over loopback, fetches its operator code (a BUNDLE
uploaded by `atom apply`: the image has never seen it), reads FILE sources under control's home,
trains, writes the sink and the model, calls back; the auto-deployed service runs in a container
too and answers an Open Inference Protocol request. A second run, stopped, gets SIGTERM in its
container and ends stopped. No container is left behind.

Stand-in: none (the suite's dockerd and the agent image built from this working tree).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from control.cli.main import main
from control.client import AsyncControlClient
from control.dispatch.docker_spec import docker_prefix
from control.schemas import TaskEvent
from control.settings import Settings
from tests.e2e.conftest import (
    LiveControl,
    infer_test_rows,
    make_tabular,
    run_state,
    service_key,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.slow]

ENDED = ("succeeded", "failed", "stopped")
SECRET = "AWS_SECRET_ACCESS_KEY"

SPEC = """
space: default
connections:
  - {{connectName: files, connectType: FILE, connectAddr: ./data}}
sources:
  - {{sourceName: train, connectionName: files, sourceType: source, operateExecute: train.csv}}
  - {{sourceName: test, connectionName: files, sourceType: test_source, operateExecute: test.csv}}
  - {{sourceName: predictions, connectionName: files, sourceType: sink, operateExecute: predictions.csv}}
operators:
  - operatorName: tabular
    operatorRuntimeType: TRAIN
    moduleName: {module}
    executeObject: Train
    codeMode: BUNDLE
    codeAddress: ./opcode
    deployType: AUTO_DEPLOY
    operatorEpoch: 2
    operatorConf: {{labelColumn: label, hidden: 16, lr: 0.05}}
  - operatorName: waits
    operatorRuntimeType: PYTHON_DATA
    moduleName: {module}
    executeObject: Waits
    codeMode: BUNDLE
    codeAddress: ./opcode
models: [{{modelName: tabular, connectionName: files}}]
serviceInfos:
  - {{siName: box, siRuntimePattern: DOCKER, siCpu: 1, siMemory: 2048}}
nodes:
  - nodeName: train-in-docker
    operatorRuntimeType: TRAIN
    nodeStatus: EDIT_FINISH
    relation: {{operator: tabular, sources: [train, test, predictions], model: tabular, serviceInfo: box}}
  - nodeName: wait-in-docker
    operatorRuntimeType: PYTHON_DATA
    nodeStatus: EDIT_FINISH
    relation: {{operator: waits, sources: [train], serviceInfo: box}}
"""

OPERATORS = """
import asyncio
import json
import os

from runtime_agent.api import Operator
from runtime_agent.examples.train_example import TrainExample


class Train(TrainExample):
    def task_init_execute(self, ctx):
        ctx.logger.info("ENVNAMES %s", json.dumps(sorted(os.environ)))
        ctx.logger.info("INSIDE uid=%d in-container=%s", os.getuid(), os.path.exists("/.dockerenv"))
        ctx.logger.info("PATHS %s", json.dumps([os.environ.get("PATH"), os.environ.get("VIRTUAL_ENV")]))


class Waits(Operator):
    async def task_init_execute(self, ctx):
        ctx.logger.info("waiting to be stopped")
        while True:
            await asyncio.sleep(0.2)
"""


@pytest.fixture
def docker_settings(
    live_settings: Settings, docker_engine: Any, agent_image: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    monkeypatch.setenv(SECRET, "not-for-agents-5678")
    monkeypatch.setenv("VIRTUAL_ENV", "/control/venv")  # control's own paths stay with control
    live_settings.docker_host = docker_engine.host
    live_settings.docker_image = agent_image
    live_settings.docker_pull = "never"
    client = docker_engine.client()
    label = f"atom.home={live_settings.home}"
    try:
        yield live_settings
    finally:
        left = client.containers.list(all=True, filters={"label": label}, ignore_removed=True)
        for container in left:
            container.remove(force=True)
        client.close()
        assert [c.name for c in left] == [], "containers left behind"


def _project(home: Path) -> tuple[Path, str]:
    """spec.yaml, data and operator code under control's home (the containers see the same paths)."""
    project = home / "project"
    module = f"docker_ops_{uuid.uuid4().hex[:8]}"
    make_tabular(project / "data", rows=300)
    (project / "opcode").mkdir(parents=True)
    (project / "opcode" / f"{module}.py").write_text(textwrap.dedent(OPERATORS))
    (project / "spec.yaml").write_text(textwrap.dedent(SPEC.format(module=module)))
    return project, module


async def _service_ready(client: AsyncControlClient, run_id: int) -> Any:
    mine = [x for x in await client.list_services() if x.runtime_id == run_id]
    assert not mine or mine[0].state.value != "failed", mine[0].reason
    return mine[0] if mine and mine[0].state.value == "ready" else None


def _containers(engine: Any, home: Path) -> list[Any]:
    client = engine.client()
    try:
        return list(
            client.containers.list(all=True, filters={"label": f"atom.home={home}"}, ignore_removed=True)
        )
    finally:
        client.close()


async def test_a_run_and_its_service_in_containers_then_a_stopped_run(
    docker_settings: Settings, docker_engine: Any
) -> None:
    home = docker_settings.home
    prefix = docker_prefix(home)
    project, module = _project(home)
    with LiveControl(docker_settings) as live:
        async with AsyncControlClient(live.url) as client:
            assert (
                await asyncio.to_thread(main, ["--url", live.url, "apply", "-f", str(project / "spec.yaml")])
                == 0
            )
            node = await client.get("default", "nodes", "train-in-docker")
            run_id = (await client.start_node_task(TaskEvent(task_id=node["id"]))).run_ids[0]
            run = await wait_for(
                lambda: run_state(client, run_id, ENDED), timeout=240, what="the container run to end"
            )
            assert run.state.value == "succeeded", run.reason
            assert run.adapter == "docker" and run.external_id == f"{prefix}-run-{run_id}-1", run.external_id
            async with httpx.AsyncClient(base_url=live.url, timeout=60) as api:
                described = (await api.get(f"/api/v1/runs/{run_id}")).json()
            assert described["dispatch"]["resources"]["cpu"] == 1
            assert described["dispatch"]["resources"]["memoryMib"] == 2048

            assert len(pd.read_csv(project / "data" / "predictions.csv")) == 60
            model = await client.get("default", "models", "tabular")
            assert [v["modelVersion"] for v in model["versions"]] == ["1"]
            log = (await client.run_logs(run_id, limit=1 << 20)).text
            assert f"INSIDE uid={os.getuid()} in-container=True" in log, log[-2000:]
            names = json.loads(re.search(r"ENVNAMES (\[.*?\])", log).group(1))  # type: ignore[union-attr]
            assert SECRET not in names and "ATOM_DB_URL" not in names
            path, venv = json.loads(re.search(r"PATHS (\[.*?\])", log).group(1))  # type: ignore[union-attr]
            assert venv != "/control/venv" and path != os.environ["PATH"], (path, venv)
            assert {"ATOM_RUN_ID", "ATOM_RUN_TOKEN", "ATOM_MODEL_VERSION", "ATOM_HOME"} <= set(names)
            assert "code: BUNDLE atom-code://sha256:" in log

            service = await wait_for(
                lambda: _service_ready(client, run_id), timeout=120, what="the service container to be ready"
            )
            assert service.adapter == "docker"
            [svc_container] = [
                c for c in _containers(docker_engine, home) if c.name == f"{prefix}-svc-{service.id}"
            ]
            assert svc_container.status == "running" and svc_container.labels["atom.kind"] == "service"
            resp = await infer_test_rows(
                service.endpoint,
                service.service_name,
                project / "data" / "test.csv",
                key=await service_key(live.url, service.id),
            )
            assert resp.status_code == 200, resp.text
            outputs = {o["name"]: o["data"] for o in resp.json()["outputs"]}
            # the answer names the model as the request did (here by the service's name)
            assert len(outputs["prediction"]) == 3 and resp.json()["model_name"] == service.service_name

            # a second run, stopped while it runs: SIGTERM reaches the agent in its container
            waits = await client.get("default", "nodes", "wait-in-docker")
            event = TaskEvent(task_id=waits["id"], envs={"ATOM_HEARTBEAT_INTERVAL": "30"})
            second = (await client.start_node_task(event)).run_ids[0]

            async def waiting() -> bool:
                return "waiting to be stopped" in (await client.run_logs(second, limit=1 << 20)).text

            await wait_for(waiting, timeout=120, what="the second run's operator to wait")
            stopped = await client.stop_run(second)
            assert stopped.state.value == "stopped"
            adapter = live.app.state.orchestrator.adapters["docker"]
            name = f"{prefix}-run-{second}-1"

            async def container_gone() -> bool:
                return not [
                    c for c in await asyncio.to_thread(_containers, docker_engine, home) if c.name == name
                ]

            await wait_for(container_gone, timeout=60, what="the stopped run's container to be removed")
            ended = await adapter.describe(name)
            assert (
                ended.exit_code == 143 and ended.detail == "the agent container was stopped: ended by SIGTERM"
            )
            # the container is gone and so is control's copy of its output: the shipped log is whole
            copy = home / "runs" / str(second) / "logs" / "agent.log"
            await asyncio.to_thread(copy.unlink, missing_ok=True)
            log = (await client.run_logs(second, limit=1 << 20)).text
            assert "stop requested: stopped by SIGTERM" in log, log[-2000:]
            assert (await client.get_run(second)).state.value == "stopped"

            await client.stop_service(service.id)
            await wait_for(
                lambda: asyncio.to_thread(lambda: not _containers(docker_engine, home)),
                timeout=60,
                what="every container of this control to be removed",
            )
        live.kill_started()


@pytest.mark.parametrize("trouble", ["no such image", "no engine"])
async def test_a_run_that_cannot_start_on_docker_fails_with_one_line_and_leaves_nothing(
    docker_settings: Settings, docker_engine: Any, trouble: str
) -> None:
    home = docker_settings.home
    project, _ = _project(home)
    if trouble == "no such image":
        docker_settings.docker_image = "atom-no-such-image:0"
        docker_settings.docker_pull = "missing"
        where = docker_engine.host
        expected = f"image atom-no-such-image:0 is not on the engine at {where} and could not be pulled: "
    else:
        docker_settings.docker_host = f"unix://{home}/no-docker.sock"
        expected = f"Docker engine at unix://{home}/no-docker.sock is not answering: "
    with LiveControl(docker_settings) as live:
        async with (
            AsyncControlClient(live.url) as client,
            httpx.AsyncClient(base_url=live.url, timeout=60) as api,
        ):
            assert (
                await asyncio.to_thread(main, ["--url", live.url, "apply", "-f", str(project / "spec.yaml")])
                == 0
            )
            node = await client.get("default", "nodes", "train-in-docker")
            resp = await api.post(
                "/lamp/atom/service/operator/taskEvent/startNodeTask", json={"taskId": node["id"]}
            )
            assert resp.status_code == 503, resp.text
            assert resp.json()["msg"].startswith(expected) and "\n" not in resp.json()["msg"], resp.json()
            [run] = (await client.list_runs()).items
            assert run.state.value == "failed" and run.reason.startswith(expected), run.reason
    assert _containers(docker_engine, home) == []


async def test_a_run_whose_container_runs_out_of_memory_fails_saying_so(
    docker_settings: Settings, docker_engine: Any
) -> None:
    home = docker_settings.home
    project, _ = _project(home)
    with LiveControl(docker_settings) as live:
        async with (
            AsyncControlClient(live.url) as client,
            httpx.AsyncClient(base_url=live.url, timeout=60) as api,
        ):
            assert (
                await asyncio.to_thread(main, ["--url", live.url, "apply", "-f", str(project / "spec.yaml")])
                == 0
            )
            resp = await api.patch("/api/v1/spaces/default/service-infos/box", json={"siMemory": 64})
            assert resp.status_code == 200, resp.text
            node = await client.get("default", "nodes", "train-in-docker")
            run_id = (await client.start_node_task(TaskEvent(task_id=node["id"]))).run_ids[0]
            run = await wait_for(lambda: run_state(client, run_id, ENDED), timeout=120, what="the run to end")
            assert run.state.value == "failed", run.reason
            assert run.reason.startswith("out of memory (limit 64 MiB): the agent process was killed"), (
                run.reason
            )
            await wait_for(
                lambda: asyncio.to_thread(lambda: not _containers(docker_engine, home)),
                timeout=60,
                what="the container to be removed",
            )
