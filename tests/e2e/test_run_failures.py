"""Runs that go wrong, with real agent processes: each ends failed or stopped, with a reason."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from control.client import AsyncControlClient
from control.schemas import TaskEvent
from tests.control.factory import SP, define_node, ok
from tests.e2e.conftest import LiveControl, make_tabular, run_state, wait_for

pytestmark = pytest.mark.e2e

ENDED = ("succeeded", "failed", "stopped")


async def _start(
    live: LiveControl,
    client: AsyncControlClient,
    tmp_path: Path,
    *,
    module: str,
    cls: str,
    conf: dict | None = None,
) -> int:
    make_tabular(tmp_path / "data", rows=100)
    async with httpx.AsyncClient(base_url=live.url, timeout=60) as api:
        d = await define_node(
            api, data_dir=str(tmp_path / "data"), module=module, cls=cls, deploy="NOT_DEPLOY"
        )
        if conf is not None:
            await ok(await api.patch(f"{SP}/operators/tabular", json={"operatorConf": conf}))
    started = await client.start_node_task(TaskEvent(task_id=d["node"]["id"]))
    return started.run_ids[0]


def _pid(external_id: str | None) -> int:
    assert external_id and external_id.startswith("pid:")
    return int(external_id.split(":")[1])


async def test_killed_agent_fails_the_run(
    live_control: LiveControl, client: AsyncControlClient, tmp_path
) -> None:
    release = tmp_path / "never"
    run_id = await _start(
        live_control,
        client,
        tmp_path,
        module="tests.e2e.operators",
        cls="WaitForFile",
        conf={"releaseFile": str(release)},
    )
    run = await wait_for(lambda: run_state(client, run_id, ("running",) + ENDED), timeout=60, what="running")
    assert run.state.value == "running", run.reason
    os.killpg(_pid(run.external_id), signal.SIGKILL)
    run = await wait_for(lambda: run_state(client, run_id, ENDED), timeout=30, what="failed")
    assert run.state.value == "failed"
    assert "SIGKILL" in run.reason and "killed" in run.reason


async def test_silent_agent_fails_on_missed_heartbeats(tmp_path, live_settings) -> None:
    live_settings.heartbeat_timeout = 4
    with LiveControl(live_settings) as live:
        async with AsyncControlClient(live.url) as client:
            run_id = await _start(
                live,
                client,
                tmp_path,
                module="tests.e2e.operators",
                cls="WaitForFile",
                conf={"releaseFile": str(tmp_path / "never")},
            )
            run = await wait_for(
                lambda: run_state(client, run_id, ("running",) + ENDED), timeout=60, what="running"
            )
            pid = _pid(run.external_id)
            os.killpg(pid, signal.SIGSTOP)  # alive, but silent
            try:
                run = await wait_for(lambda: run_state(client, run_id, ENDED), timeout=40, what="failed")
            finally:
                with pytest.raises(ProcessLookupError):
                    os.killpg(pid, signal.SIGCONT)  # the reconciler already killed it
            assert run.state.value == "failed" and "no heartbeat" in run.reason


async def test_user_stop_ends_the_agent(
    live_control: LiveControl, client: AsyncControlClient, tmp_path
) -> None:
    run_id = await _start(
        live_control,
        client,
        tmp_path,
        module="tests.e2e.operators",
        cls="WaitForFile",
        conf={"releaseFile": str(tmp_path / "never")},
    )
    run = await wait_for(lambda: run_state(client, run_id, ("running",) + ENDED), timeout=60, what="running")
    stopped = await client.stop_run(run_id)
    assert stopped.state.value == "stopped"
    adapter = live_control.app.state.orchestrator.adapter("local")
    await wait_for(lambda: _gone(adapter, run.external_id), timeout=20, what="agent exit")
    assert (await client.get_run(run_id)).state.value == "stopped"


async def _gone(adapter, external_id: str) -> bool:  # type: ignore[no-untyped-def]
    return not (await adapter.describe(external_id)).alive


@pytest.mark.parametrize(
    ("module", "cls", "needle"),
    [
        ("no_such_pkg.train", "Model", "no_such_pkg"),
        ("tests.e2e.operators", "NoSuchClass", "NoSuchClass"),
        ("tests.e2e.operators", "Explodes", "negative values"),
    ],
)
async def test_operator_errors_name_the_cause(
    live_control: LiveControl, client: AsyncControlClient, tmp_path, module: str, cls: str, needle: str
) -> None:
    run_id = await _start(live_control, client, tmp_path, module=module, cls=cls)
    run = await wait_for(lambda: run_state(client, run_id, ENDED), timeout=90, what="the run to end")
    assert run.state.value == "failed"
    assert needle in run.reason
    assert "Traceback" not in run.reason and "\n" not in run.reason
    log = await client.run_logs(run_id)
    assert needle in log.text


async def test_a_service_whose_model_cannot_load_fails_with_the_reason(
    live_control: LiveControl, client: AsyncControlClient, tmp_path
) -> None:
    make_tabular(tmp_path / "data", rows=100)
    async with httpx.AsyncClient(base_url=live_control.url, timeout=60) as api:
        d = await define_node(api, data_dir=str(tmp_path / "data"), deploy="AUTO_DEPLOY")
        conf = {"servingObject": "tests.e2e.operators:NoSuchServing"}
        await ok(await api.patch(f"{SP}/operators/tabular", json={"modelConf": conf}))
        run_id = (await client.start_node_task(TaskEvent(task_id=d["node"]["id"]))).run_ids[0]
        run = await wait_for(lambda: run_state(client, run_id, ENDED), timeout=120, what="the run to end")
        assert run.state.value == "succeeded", run.reason

        async def failed() -> dict | None:  # type: ignore[type-arg]
            mine = [x for x in await ok(await api.get("/api/v1/services")) if x["runtimeId"] == run_id]
            return mine[0] if mine and mine[0]["state"] == "failed" else None

        svc = await wait_for(failed, timeout=60, what="the service to fail")  # well before the ready timeout
    assert svc["reason"].startswith("the model failed to load:") and "NoSuchServing" in svc["reason"]
