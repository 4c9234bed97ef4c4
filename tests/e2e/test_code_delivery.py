"""Operator code that exists only in an uploaded bundle and in a git repository at a tag reaches real
agent processes of a live control, whose working directory cannot import it."""

from __future__ import annotations

import asyncio
import importlib.util
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from control.cli.main import main
from control.client import AsyncControlClient
from control.schemas import TaskEvent
from tests.e2e.conftest import LiveControl, make_tabular, run_state, wait_for
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
