"""Control restarts while a run goes on: the run still ends succeeded, with nothing recorded twice.

Control runs as a real `atom server` process on a fixed port with a SQLite store; it is killed
(SIGKILL) while the agent trains and started again on the same port and store after the agent
has written its sink and stored its model. The agent, started by the first control, retries its
calls through the outage. Every agent and service process is killed at the end, found through
the store (the control that started them may be dead).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from control import launch
from control import schemas as s
from control.client import AsyncControlClient
from control.deploy import free_port
from control.schemas import TaskEvent
from tests.control.factory import SP, define_node, ok
from tests.e2e.conftest import LiveControl, make_tabular, run_state, wait_for
from tests.e2e.control_process import ControlProcess

pytestmark = pytest.mark.e2e

ENDED = ("succeeded", "failed", "stopped")
EPOCHS, GATE_EPOCH = 8, 3
HEARTBEAT_TIMEOUT = 8
OUTAGE_S = 15
"""How long control stays down: longer than its heartbeat timeout, so the restarted control
would judge the agent silent without its grace period."""


@pytest.fixture
def control(tmp_path: Path) -> Iterator[ControlProcess]:
    ctl = ControlProcess(
        tmp_path / "home", free_port(), tmp_path / "control.log", heartbeat_timeout=HEARTBEAT_TIMEOUT
    )
    ctl.start()
    try:
        yield ctl
    finally:
        ctl.kill()
        ctl.kill_started()


async def test_a_run_survives_control_restarting_around_its_end(
    control: ControlProcess, tmp_path: Path
) -> None:
    data, gate = tmp_path / "data", tmp_path / "gate"
    make_tabular(data, rows=200)
    await control.ready()
    async with httpx.AsyncClient(base_url=control.url, timeout=10) as api:
        d = await define_node(
            api, data_dir=str(data), module="tests.e2e.outage_operators", cls="GatedTrainer", epochs=EPOCHS
        )
        conf = {"gateFile": str(gate), "gateEpoch": GATE_EPOCH, "epochSeconds": 0.2}
        await ok(await api.patch(f"{SP}/operators/tabular", json={"operatorConf": conf}))
    async with AsyncControlClient(control.url) as client:
        run_id = (await client.start_node_task(TaskEvent(task_id=d["node"]["id"]))).run_ids[0]

        async def gated() -> bool:  # control has the metrics of the epochs before the gate
            return len(await client.run_metrics(run_id)) == 2 * GATE_EPOCH

        await wait_for(gated, timeout=120, what=f"the metrics of {GATE_EPOCH} epochs")

    control.kill()
    down_at = time.monotonic()
    gate.touch()  # training goes on without control
    agent_log = control.home / "runs" / str(run_id) / "logs" / "agent.log"
    sink = data / "predictions.csv"

    def finished_and_retrying() -> bool:
        text = agent_log.read_text() if agent_log.exists() else ""
        archive = list(data.glob("**/model.tar.gz"))
        _, registering, after = text.partition("runtime_agent.callbacks: model version:")
        return sink.exists() and bool(archive) and bool(registering) and "waits for control" in after

    await wait_for(finished_and_retrying, timeout=120, what="the agent to finish its work and retry")
    await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))  # the outage's length
    text = agent_log.read_text()
    assert text.count("is unreachable") == 1, text  # one warning for the outage, not one per attempt

    control.start()
    await control.ready()
    down_s = time.monotonic() - down_at
    async with AsyncControlClient(control.url) as client:
        run = await wait_for(lambda: run_state(client, run_id, ENDED), timeout=120, what="the run to end")
        assert run.state.value == "succeeded", run.reason

        model = await client.get("default", "models", "tabular")
        assert [v["modelVersion"] for v in model["versions"]] == ["1"]
        services = await wait_for(
            lambda: _ready_services(client), timeout=120, what="the service to become ready"
        )
        assert len(services) == 1 and services[0].model_version == "1"
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(f"{services[0].endpoint}/v2/health/ready")).status_code == 200

        # its process killed, the ready service is started again by control (ATOM_SERVICE_RESTARTS)
        first = services[0]
        os.killpg(_service_pid(control.home, first.id), signal.SIGKILL)

        async def restarted() -> s.ServiceOut | None:
            svc = await client.get_service(first.id)
            return svc if svc.state.value == "ready" and svc.restarts == 1 else None

        again = await wait_for(restarted, timeout=120, what="the killed service to be restarted")
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(f"{again.endpoint}/v2/health/ready")).status_code == 200

        points = await client.run_metrics(run_id)
        loss = [p.step for p in points if p.name == "loss"]
        assert loss == list(range(1, EPOCHS + 1))  # the outage's metrics arrived, in order, once

    rows = pd.read_csv(sink)
    assert len(rows) == 40 and list(rows["row"]) == list(range(40))  # the test split, written once
    assert "answers again" in agent_log.read_text()
    print(f"control was down {down_s:.1f} s around the run's end")  # noqa: T201 - the measured outage


def _service_pid(home: Path, service_id: int) -> int:
    with contextlib.closing(sqlite3.connect(home / "atom.db")) as conn:
        query = "SELECT external_id FROM services WHERE id = ?"
        (external_id,) = conn.execute(query, (service_id,)).fetchone()
    assert str(external_id).startswith("pid:"), external_id
    return int(str(external_id).split(":")[1])


async def _ready_services(client: AsyncControlClient) -> list[s.ServiceOut] | None:
    services = await client.list_services()
    return services if services and all(x.state.value == "ready" for x in services) else None


async def test_repeated_agent_calls_record_once(live_control: LiveControl, tmp_path: Path) -> None:
    """What a retry sends again (its answer lost) changes nothing the second time."""
    async with httpx.AsyncClient(base_url=live_control.url, timeout=60) as api:
        d = await define_node(api, data_dir=str(tmp_path), deploy="AUTO_DEPLOY")
    orch = live_control.app.state.orchestrator
    event = s.TaskEvent(task_id=d["node"]["id"])
    run, token = await orch.db(lambda ses: launch.start_node(session=ses, event=event, adapter="local"))
    async with AsyncControlClient(live_control.url, token=token) as agent:
        for _ in range(2):
            await agent.report_state(run.id, s.StateReport(state=s.RunState.RUNNING, reason="agent up"))
        for step in (1, 2, 2, 1, 3):
            await agent.report_metrics(run.id, s.MetricReport(step=step, values={"loss": 1 / step}))
        await agent.report_metrics(run.id, s.MetricReport(step=2, values={"loss": 9.0, "acc": 0.5}))
        report = s.ModelVersionReport(
            model_address="file:///m.tar.gz",
            model_score=0.9,
            serving_object="tests.e2e.outage_operators:GatedServe",
        )
        first = await agent.register_model_version(run.id, report)
        again = await agent.register_model_version(run.id, report)
        finish = s.TaskEvent(task_id=d["node"]["id"], run_parameter={"runId": str(run.id)})
        done = [await agent.running_auto_finish(finish) for _ in range(2)]
        seen = await agent.get_run(run.id)
        points = await agent.run_metrics(run.id)
        services = await agent.list_services()
    assert first == again and first.model_version == "1"
    assert [x.state for x in done] == [s.RunState.SUCCEEDED] * 2
    assert done[0].service_id is not None and done[1].service_id == done[0].service_id
    assert [x.id for x in services] == [done[0].service_id]
    assert [h.to_state.value for h in seen.history] == ["queued", "running", "succeeded"]
    assert [(p.step, p.name, p.value) for p in points] == [
        (1, "loss", 1.0),
        (2, "loss", 0.5),
        (3, "loss", 1 / 3),
        (2, "acc", 0.5),
    ]


@pytest.mark.ray
async def test_a_ray_run_survives_control_killed_and_its_head_is_taken_over(
    control: ControlProcess, tmp_path: Path
) -> None:
    """The Ray adapter's run goes on when control is killed: control's own Ray head outlives it,
    and the restarted control takes the head over (no second head) and sees the job end."""
    import json

    from control.dispatch.ray_head import session_pids

    data, gate = tmp_path / "data", tmp_path / "gate"
    make_tabular(data, rows=200)
    state = control.home / "ray-head.json"
    await control.ready()
    try:
        async with httpx.AsyncClient(base_url=control.url, timeout=30) as api:
            d = await define_node(
                api,
                data_dir=str(data),
                module="tests.e2e.outage_operators",
                cls="GatedTrainer",
                epochs=EPOCHS,
            )
            conf = {"gateFile": str(gate), "gateEpoch": GATE_EPOCH, "epochSeconds": 0.1}
            await ok(await api.patch(f"{SP}/operators/tabular", json={"operatorConf": conf}))
            await ok(
                await api.patch(f"{SP}/service-infos/small", json={"siRuntimePattern": "RAY", "siMemory": 0})
            )
        async with AsyncControlClient(control.url, timeout=60) as client:
            run_id = (await client.start_node_task(TaskEvent(task_id=d["node"]["id"]))).run_ids[0]

            async def gated() -> bool:
                run = await client.get_run(run_id)
                assert run.state.value in ("queued", "pending", "running"), (run.reason, _tail(control.log))
                return len(await client.run_metrics(run_id)) == 2 * GATE_EPOCH

            try:
                await wait_for(gated, timeout=120, what=f"the metrics of {GATE_EPOCH} epochs")
            except AssertionError as exc:
                run = await client.get_run(run_id)
                logs = await client.run_logs(run_id)
                raise AssertionError(
                    f"{exc}: {run.state} {run.reason} | {logs.text[-1500:]} | {_tail(control.log)}"
                ) from exc
        head = json.loads(state.read_text())
        control.kill()
        gate.touch()
        assert session_pids(head["pid"]), "control's Ray head died with control"

        control.start()
        await control.ready()
        async with AsyncControlClient(control.url) as client:
            run = await wait_for(lambda: run_state(client, run_id, ENDED), timeout=120, what="the run to end")
            assert run.state.value == "succeeded", run.reason
            assert run.adapter == "ray" and run.external_id and run.external_id.startswith("atom-run-")
            model = await client.get("default", "models", "tabular")
            assert [v["modelVersion"] for v in model["versions"]] == ["1"]
            points = await client.run_metrics(run_id)
            assert [p.step for p in points if p.name == "loss"] == list(range(1, EPOCHS + 1))
        assert json.loads(state.read_text())["pid"] == head["pid"]  # taken over, not started again
        assert len(pd.read_csv(data / "predictions.csv")) == 40
    finally:
        control.kill()
        if state.exists():
            for pid in session_pids(json.loads(state.read_text())["pid"]):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
