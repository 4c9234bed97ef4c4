"""Quota reservations are never leaked by a control killed between try, confirm and cancel.

Control runs as a real `atom server` process (SQLite store) with `ATOM_TEST_CRASH_AT` naming one
fault-injection point of `control.quota`; it kills itself with SIGKILL exactly there:

- `quota.after_try`: the run's reservation is TRYING and its agent was never started;
- `quota.after_start`: the agent was started, but neither its start nor the confirm was stored;
- `quota.before_cancel`: the agent reported the run's end, which was not yet stored with the cancel.

Control is started again on the same home, without the fault, and the run still ends succeeded,
its reservation CANCELLED, and its space's usage back at 0.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from control.deploy import free_port
from tests.control.factory import LAMP, SP, define_node, ok
from tests.e2e.conftest import kill_processes_of, make_tabular, wait_for
from tests.e2e.control_process import ControlProcess

pytestmark = pytest.mark.e2e

HEARTBEAT_TIMEOUT = 4
"""Seconds: after a restart, agents of the killed control get this long to call before control
settles what the crash left (short, so the test is quick)."""


@pytest.fixture
def control(tmp_path: Path) -> Iterator[ControlProcess]:
    ctl = ControlProcess(tmp_path / "home", free_port(), tmp_path / "control.log")
    ctl.env["ATOM_HEARTBEAT_TIMEOUT"] = str(HEARTBEAT_TIMEOUT)
    try:
        yield ctl
    finally:
        ctl.kill()
        kill_processes_of(ctl.home)  # agents the store may not name (killed before it stored them)


def reservations(home: Path) -> list[tuple[int, str]]:
    with contextlib.closing(sqlite3.connect(home / "atom.db")) as conn:
        return list(conn.execute("SELECT runtime_id, state FROM reservations ORDER BY id"))


def run_ids(home: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(home / "atom.db")) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM runtimes ORDER BY id")]


@pytest.mark.parametrize(
    ("point", "held_at_crash"),
    [("quota.after_try", "TRYING"), ("quota.after_start", "TRYING"), ("quota.before_cancel", "CONFIRMED")],
)
async def test_a_control_killed_between_the_steps_leaks_no_reservation(
    control: ControlProcess, tmp_path: Path, point: str, held_at_crash: str
) -> None:
    data = tmp_path / "data"
    make_tabular(data, rows=200)
    control.env["ATOM_TEST_CRASH_AT"] = point
    control.start()
    await control.ready()
    async with httpx.AsyncClient(base_url=control.url, timeout=10) as api:
        d = await define_node(
            api,
            data_dir=str(data),
            module="tests.e2e.outage_operators",
            cls="GatedTrainer",
            epochs=2,
            deploy="NOT_DEPLOY",
        )
        await ok(await api.patch(f"{SP}/operators/tabular", json={"operatorConf": {"epochSeconds": 0.05}}))
        await ok(await api.put(f"{SP}/quota", json={"cpu": 1}))
        with contextlib.suppress(httpx.HTTPError):  # control may die answering this very call
            await api.post(f"{LAMP}/taskEvent/startNodeTask", json={"taskId": d["node"]["id"]})

    proc = control.proc
    assert proc is not None
    await wait_for(lambda: proc.poll() is not None, timeout=120, what=f"control to crash at {point}")
    assert proc.returncode == -9  # killed where the fault was injected, not exited
    (run_id,) = run_ids(control.home)
    assert reservations(control.home) == [(run_id, held_at_crash)]

    del control.env["ATOM_TEST_CRASH_AT"]
    control.start()
    await control.ready()
    async with httpx.AsyncClient(base_url=control.url, timeout=10) as api:

        async def ended() -> dict[str, object] | None:
            run: dict[str, object] = (await api.get(f"/api/v1/runs/{run_id}")).json()
            return run if run["state"] in ("succeeded", "failed", "stopped") else None

        run = await wait_for(ended, timeout=180, what=f"run {run_id} to end")
        assert run["state"] == "succeeded", (run["reason"], control.log.read_text()[-3000:])
        reasons = [str(h["reason"]) for h in (await api.get(f"/api/v1/runs/{run_id}")).json()["history"]]
        # never started: released and dispatched again; started: its own agent finished it
        assert any(r.startswith("quota: released") for r in reasons) == (point == "quota.after_try"), reasons
        quota = await ok(await api.get(f"{SP}/quota"))
        assert quota["used"] == {"cpu": 0.0, "gpu": 0, "memory": 0} and quota["reservations"] == []
    assert reservations(control.home) == [(run_id, "CANCELLED")]
