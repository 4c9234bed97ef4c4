"""A real agent ships its output to a real control (`ATOM_LOG_SHIP=1`): the run's log is whole after the
agent's own log file is deleted, and control being killed mid-run and started again loses no line.

Control runs as an `atom server` process (killed with SIGKILL, started again on the same port and
store); the agent it starts inherits `ATOM_LOG_SHIP` and goes on through the outage.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from control import run_logs
from control.client import AsyncControlClient
from control.deploy import free_port
from control.schemas import TaskEvent
from control.secrets import new_token, token_hash
from control.settings import Settings
from control.store import models as m
from runtime_agent.log_shipping import BATCH_BYTES, LogShipper
from runtime_agent.logs import add_secret
from tests.control.factory import SP, define_node, ok
from tests.e2e.conftest import LiveControl, make_tabular, run_state, wait_for
from tests.e2e.control_process import ControlProcess

pytestmark = pytest.mark.e2e

EPOCHS, GATE_EPOCH = 6, 2


@pytest.fixture
def control(tmp_path: Path) -> Iterator[ControlProcess]:
    ctl = ControlProcess(
        tmp_path / "home",
        free_port(),
        tmp_path / "control.log",
        env={"ATOM_LOG_SHIP": "1", "ATOM_LOG_SHIP_INTERVAL": "0.2"},
    )
    ctl.start()
    try:
        yield ctl
    finally:
        ctl.kill()
        ctl.kill_started()


async def whole_log(client: AsyncControlClient, run_id: int) -> str:
    """The run's log through the API, page by page."""
    text, offset = "", 0
    while True:
        page = await client.run_logs(run_id, offset=offset, limit=4096)
        text += page.text
        offset = page.next_offset
        if page.eof or not page.text:
            return text


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def test_the_shipped_log_is_whole_after_an_outage_and_after_the_agents_file_is_gone(
    control: ControlProcess, tmp_path: Path
) -> None:
    data, gate = tmp_path / "data", tmp_path / "gate"
    make_tabular(data, rows=200)
    await control.ready()
    async with httpx.AsyncClient(base_url=control.url, timeout=10) as api:
        d = await define_node(
            api,
            data_dir=str(data),
            module="tests.e2e.outage_operators",
            cls="GatedTrainer",
            epochs=EPOCHS,
            deploy="NOT_DEPLOY",
        )
        conf = {"gateFile": str(gate), "gateEpoch": GATE_EPOCH, "epochSeconds": 0.1}
        await ok(await api.patch(f"{SP}/operators/tabular", json={"operatorConf": conf}))
    async with AsyncControlClient(control.url) as client:
        run_id = (await client.start_node_task(TaskEvent(task_id=d["node"]["id"]))).run_ids[0]
        shipped = control.home / "runs" / str(run_id) / "shipped.log"

        async def at_the_gate() -> bool:  # control has it through the shipped log, while the run goes on
            return shipped.exists() and f"epoch {GATE_EPOCH}: waiting for" in await whole_log(client, run_id)

        await wait_for(at_the_gate, timeout=120, what="the shipped log to reach the gate")

    control.kill()
    gate.touch()  # the agent goes on without control: its output waits in its buffer
    agent_log = control.home / "runs" / str(run_id) / "logs" / "agent.log"

    def finished_and_retrying() -> bool:
        text = read(agent_log)
        return f"metrics step {EPOCHS}:" in text and "waits for control" in text

    await wait_for(finished_and_retrying, timeout=120, what="the agent to go on and wait for control")
    assert f"metrics step {EPOCHS}:" not in read(shipped)  # written while control was away

    control.start()
    await control.ready()
    async with AsyncControlClient(control.url) as client:
        run = await wait_for(
            lambda: run_state(client, run_id, ("succeeded", "failed", "stopped")),
            timeout=120,
            what="the run to end",
        )
        assert run.state.value == "succeeded", run.reason

        def all_shipped() -> bool:  # the agent sends the rest as it exits
            return read(shipped) == read(agent_log)

        await wait_for(all_shipped, timeout=60, what="the agent's last output to reach control")
        await wait_for(
            lambda: shipped.with_name(run_logs.END).exists(), timeout=60, what="the agent's last batch"
        )
        own = read(agent_log)
        agent_log.unlink()  # the agent's own file is gone, as with a removed pod
        text = await whole_log(client, run_id)
        assert (await client.run_logs(run_id, offset=len(own.encode()))).eof
    assert text == own
    for epoch in range(1, EPOCHS + 1):
        assert text.count(f"metrics step {epoch}:") == 1, text  # each line once, the outage's too
    assert "is unreachable" in text and "answers again" in text


def make_run(live: LiveControl) -> tuple[int, str]:
    token = new_token()
    with live.app.state.orchestrator.store.transaction() as ses:
        run = m.Runtime(
            node_name="n",
            operator_runtime_type="TRAIN",
            state="running",
            token_hash=token_hash(token),
            spec={},
        )
        ses.add(run)
        ses.flush()
        return run.id, token


async def test_output_beyond_the_buffer_while_control_is_away_leaves_one_marked_gap(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", port=free_port(), reconcile_interval=3600)
    out = tmp_path / "out.txt"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    with LiveControl(settings) as live:
        run_id, token = make_run(live)
        shipper = LogShipper(live.url, run_id, token, interval=0.05, max_buffer=BATCH_BYTES, fds=(fd,))
        shipper.start()
        add_secret("pw-7f3a9c")  # a password the agent learned: masked before it is kept
        os.write(fd, b"first pw-7f3a9c\n")
        shipped = run_logs.shipped_path(settings.runs_dir, run_id)
        await wait_for(
            lambda: read(shipped) == "first ***\n" and shipper.pending == 0, timeout=30, what="the first line"
        )
    data = b"".join(b"line %06d \xc3\xa9\n" % i for i in range(40_000))  # 600 kB, more than the buffer holds
    os.write(fd, data)
    size = len(b"first pw-7f3a9c\n") + len(data)
    await wait_for(lambda: out.stat().st_size == size, timeout=30, what="the output to pass through")
    assert shipper.dropped > 0
    with LiveControl(settings):
        shipper.close()
    os.close(fd)
    assert out.read_bytes() == b"first pw-7f3a9c\n" + data  # the original output is untouched
    text = read(shipped)
    mark = f"[{shipper.dropped} bytes of the agent's output were lost here]\n"
    assert text == "first ***\n" + mark + data[shipper.dropped :].decode()
    assert shipper.pending == 0
