"""Operator code that exists only in an uploaded bundle and in a git repository at a tag reaches real
agent processes of a live control, whose working directory cannot import it; an AUTO_DEPLOY service
whose serving class exists only in the bundle fetches it too and answers inference requests."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from control.cli.main import main
from control.client import AsyncControlClient
from control.schemas import ServiceOut, TaskEvent
from control.store.engine import Store
from control.users import create_user
from tests.e2e.conftest import LiveControl, make_tabular, run_state, service_key, wait_for
from tests.runtime_agent.test_code_fetch import make_git_repo, unique, write_module

pytestmark = pytest.mark.e2e

ENDED = ("succeeded", "failed", "stopped")

SPEC = """
space: default
connections:
  - {{connectName: files, connectType: FILE, connectAddr: ./data}}
sources:
  - {{sourceName: train, connectionName: files, sourceType: source, operateExecute: train.csv}}
  - {{sourceName: out-bundle, connectionName: files, sourceType: sink, operateExecute: bundle.csv}}
  - {{sourceName: out-git, connectionName: files, sourceType: sink, operateExecute: git.csv}}
operators:
  - operatorName: bundled
    operatorRuntimeType: PYTHON_DATA
    moduleName: {bundle_module}
    executeObject: Hello
    codeMode: BUNDLE
    codeAddress: ./opcode
  - operatorName: from-git
    operatorRuntimeType: PYTHON_DATA
    moduleName: {git_module}
    executeObject: Hello
    codeMode: GIT
    codeAddress: {repo}
    codeVersion: v1
nodes:
  - nodeName: copy-bundle
    operatorRuntimeType: PYTHON_DATA
    nodeStatus: EDIT_FINISH
    relation: {{operator: bundled, sources: [train, out-bundle]}}
  - nodeName: copy-git
    operatorRuntimeType: PYTHON_DATA
    nodeStatus: EDIT_FINISH
    relation: {{operator: from-git, sources: [train, out-git]}}
"""


def ended(client: AsyncControlClient, run_id: int) -> Callable[[], Awaitable[Any]]:
    return lambda: run_state(client, run_id, ENDED)


async def test_bundle_and_git_code_reach_the_agent(
    live_control: LiveControl, client: AsyncControlClient, tmp_path: Path
) -> None:
    bundle_module, git_module = unique("e2e_bundle_op"), unique("e2e_git_op")
    make_tabular(tmp_path / "data", rows=50)
    write_module(tmp_path / "opcode", bundle_module, "from-bundle")
    repo, commits = make_git_repo(tmp_path / "git", git_module)  # main moved on past tag v1
    for module in (bundle_module, git_module):
        assert importlib.util.find_spec(module) is None  # importable only once fetched
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        textwrap.dedent(SPEC.format(bundle_module=bundle_module, git_module=git_module, repo=repo))
    )

    code = await asyncio.to_thread(main, ["--url", live_control.url, "apply", "-f", str(spec)])
    assert code == 0
    bundled = await client.get("default", "operators", "bundled")
    assert bundled["codeAddress"].startswith("atom-code://sha256:")

    cache = tmp_path / "agent-cache"  # a host that has never seen this code
    run_ids = {}
    for node in ("copy-bundle", "copy-git"):
        node_id = (await client.get("default", "nodes", node))["id"]
        event = TaskEvent(task_id=node_id, envs={"ATOM_CODE_CACHE": str(cache)})
        run_ids[node] = (await client.start_node_task(event)).run_ids[0]
    for node, run_id in run_ids.items():
        run = await wait_for(ended(client, run_id), timeout=120, what=f"{node} ends")
        assert run.state.value == "succeeded", f"{node}: {run.reason}"

    for sink, value in (("bundle.csv", "from-bundle"), ("git.csv", "v1")):
        rows = pd.read_csv(tmp_path / "data" / sink)
        assert len(rows) == 40 and set(rows["value"]) == {value}, sink
    log = (await client.run_logs(run_ids["copy-bundle"])).text
    assert f"code: BUNDLE {bundled['codeAddress']}" in log and str(cache / "bundle") in log
    log = (await client.run_logs(run_ids["copy-git"])).text
    assert f"code: GIT {repo} {commits['v1']}" in log and "fetched" in log


SERVED_SPEC = """
space: default
connections:
  - {{connectName: files, connectType: FILE, connectAddr: ./data}}
sources:
  - {{sourceName: train, connectionName: files, sourceType: source, operateExecute: train.csv}}
operators:
  - operatorName: scaler
    operatorRuntimeType: TRAIN
    moduleName: {module}.train
    executeObject: Fit
    codeMode: BUNDLE
    codeAddress: ./opcode
    deployType: AUTO_DEPLOY
models: [{{modelName: scaler, connectionName: files}}]
nodes:
  - nodeName: fit-scaler
    operatorRuntimeType: TRAIN
    nodeStatus: EDIT_FINISH
    relation: {{operator: scaler, sources: [train], model: scaler}}
"""

TRAIN = """
from pathlib import Path

from runtime_agent.api import TrainOperator


class Fit(TrainOperator):
    \"\"\"The model is one number: the largest |f0| in the training rows.\"\"\"

    serving_object = "{module}.serve:Scale"

    def task_init_execute(self, ctx):
        self.top = 0.0

    def operate_execute(self, batch, ctx):
        self.top = max(self.top, float(batch["f0"].abs().max()))

    def task_finish_execute(self, ctx):
        Path(ctx.model_dir, "scale.txt").write_text(repr(self.top))
"""

SERVE = """
from pathlib import Path

import pandas as pd

from runtime_agent.api import ReasoningOperator


class Scale(ReasoningOperator):
    def load(self, model_dir):
        self.scale = float(Path(model_dir, "scale.txt").read_text())

    def predict(self, df):
        return pd.DataFrame({{"scaled": df["f0"] / self.scale, "tag": "{tag}"}})
"""


async def ready_service(client: AsyncControlClient, run_id: int) -> ServiceOut | None:
    """The run's service once it is ready; a service that failed, or whose model failed to load, fails."""
    mine = [x for x in await client.list_services() if x.runtime_id == run_id]
    if not mine:
        return None
    if mine[0].state.value == "failed":
        raise AssertionError(f"service {mine[0].service_name} failed: {mine[0].reason}")
    if mine[0].state.value == "ready":
        return mine[0]
    if mine[0].endpoint:
        async with httpx.AsyncClient(timeout=5) as http:
            with contextlib.suppress(httpx.TransportError):
                error = (await http.get(f"{mine[0].endpoint}/v2/health/ready")).json().get("error", "")
                if error and error != "model is loading":
                    raise AssertionError(f"service {mine[0].service_name}: {error}")
    return None


async def test_a_service_serves_a_class_that_exists_only_in_the_bundle(
    live_control: LiveControl,
    client: AsyncControlClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = unique("e2e_served")
    make_tabular(tmp_path / "data", rows=50)
    pkg = tmp_path / "opcode" / module
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "train.py").write_text(TRAIN.format(module=module))
    (pkg / "serve.py").write_text(SERVE.format(tag="from-bundle"))
    assert importlib.util.find_spec(module) is None  # importable only once fetched
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(SERVED_SPEC.format(module=module)))
    assert await asyncio.to_thread(main, ["--url", live_control.url, "apply", "-f", str(spec)]) == 0
    address = (await client.get("default", "operators", "scaler"))["codeAddress"]

    service_cache = tmp_path / "service-cache"  # the service's host has never seen this code either
    monkeypatch.setenv("ATOM_CODE_CACHE", str(service_cache))
    node_id = (await client.get("default", "nodes", "fit-scaler"))["id"]
    event = TaskEvent(task_id=node_id, envs={"ATOM_CODE_CACHE": str(tmp_path / "run-cache")})
    run_id = (await client.start_node_task(event)).run_ids[0]
    run = await wait_for(ended(client, run_id), timeout=120, what="the training run ends")
    assert run.state.value == "succeeded", run.reason
    service = await wait_for(lambda: ready_service(client, run_id), timeout=120, what="the service is ready")

    top = float(pd.read_csv(tmp_path / "data" / "train.csv")["f0"].abs().max())
    request = {"inputs": [{"name": "f0", "shape": [3], "datatype": "FP64", "data": [top, -top, 0.0]}]}
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.post(f"{service.endpoint}/v2/models/scaler/infer", json=request)
    assert resp.status_code == 200, resp.text
    outputs = {o["name"]: o["data"] for o in resp.json()["outputs"]}
    assert outputs == {"scaled": [1.0, -1.0, 0.0], "tag": ["from-bundle"] * 3}

    # once control needs logins (a user exists), the serving process wants its key: a plain client
    # sends it as a bearer token; the health routes stay open
    key = await service_key(live_control.url, service.id)
    store = Store(live_control.settings.database_url)
    with store.transaction() as ses:
        create_user(ses, "ada")
    store.dispose()
    infer_url = f"{service.endpoint}/v2/models/scaler/infer"
    async with httpx.AsyncClient(timeout=10) as http:

        async def refused() -> bool:
            return (await http.post(infer_url, json=request)).status_code == 401

        await wait_for(refused, timeout=30, what="the service to want a token")
        keyed = await http.post(infer_url, json=request, headers={"Authorization": f"Bearer {key}"})
        assert keyed.status_code == 200, keyed.text
        wrong = await http.post(infer_url, json=request, headers={"Authorization": "Bearer atomsk_wrong"})
        assert wrong.status_code == 401 and "Bearer" in wrong.json()["error"]
        assert (await http.get(f"{service.endpoint}/v2/health/ready")).status_code == 200

    digest = address.removeprefix("atom-code://sha256:")
    assert (service_cache / "bundle" / digest / module / "serve.py").is_file()
    log = (live_control.settings.services_dir / str(service.id) / "serve.log").read_text()
    assert f"code: BUNDLE {address}" in log and str(service_cache / "bundle") in log
