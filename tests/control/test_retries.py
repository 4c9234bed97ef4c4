"""Retries: a failed run is tried again as attempts of one run (backoff with jitter, failure
classes, quota released while it backs off), each attempt's reason and log kept; a user's re-run
is one more attempt. Real app over ASGI on SQLite and MariaDB; the adapter is a stand-in whose
target's state the test sets, and the reconcile clock is injected (no sleeps)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from control import quota
from control.dispatch.base import Adapter, Admission, Observed, RunDescription
from control.retries import backoff, observed_class
from control.schemas.pipeline import FailureClass
from control.settings import Settings
from control.store import models as m
from control.store.models import utcnow
from tests.control.factory import LAMP, SP, define_node, ok
from tests.control.test_tenancy import World, auth, world  # noqa: F401 - the fixture

V1 = "/api/v1"
DEAD = Observed(alive=False, exit_code=-9, detail="the agent process died (signal 9)", certain=True)


class Remote(Adapter):
    """A target whose agents live or die as the test says; it keeps each attempt's run token."""

    name = "remote"

    def __init__(self) -> None:
        self.seen: dict[str, Observed] = {}
        self.tokens: dict[int, str] = {}
        self.attempts: list[str] = []

    async def _start(self, desc: RunDescription, admission: Admission) -> str:
        self.tokens[desc.ident] = desc.env["ATOM_RUN_TOKEN"]
        self.attempts.append(desc.env["ATOM_RUN_ATTEMPT"])
        ext = f"remote:{desc.ident}:{desc.attempt}"
        self.seen[ext] = Observed(alive=True)
        return ext

    async def _stop(self, external_id: str, *, grace: float) -> None:
        self.seen[external_id] = Observed(alive=False, exit_code=None, detail="stopped", certain=True)

    async def _describe(self, external_id: str) -> Observed:
        return self.seen[external_id]


async def start(app: FastAPI, api: httpx.AsyncClient, tmp_path: Path, retries: int) -> tuple[Remote, int]:
    adapter = Remote()
    orch = app.state.orchestrator
    orch.adapters["remote"] = adapter
    orch.place_run = lambda session, spec: "remote"
    d = await define_node(api, data_dir=str(tmp_path), finish=False)
    await ok(
        await api.patch(
            f"{SP}/nodes/train-tabular", json={"maxRetries": retries, "nodeStatus": "EDIT_FINISH"}
        )
    )
    body = await ok(await api.post(f"{LAMP}/taskEvent/startNodeTask", json={"taskId": d["node"]["id"]}))
    (run_id,) = body["runIds"]
    await dispatched(api, run_id, 1)
    return adapter, run_id


async def dispatched(api: httpx.AsyncClient, run_id: int, attempt: int) -> dict[str, Any]:
    for _ in range(200):
        run = await ok(await api.get(f"{V1}/runs/{run_id}"))
        if run.get("externalId") and run["attempt"] == attempt:
            return dict(run)
        await asyncio.sleep(0.05)
    raise AssertionError(f"attempt {attempt} of run {run_id} was never dispatched")


async def run_of(api: httpx.AsyncClient, run_id: int) -> dict[str, Any]:
    return dict(await ok(await api.get(f"{V1}/runs/{run_id}")))


async def report_failed(
    api: httpx.AsyncClient, adapter: Remote, run_id: int, cls: str, **extra: Any
) -> httpx.Response:
    body = {
        "state": "failed",
        "reason": f"failed in stage operate: a {cls} error",
        "failureClass": cls,
        **extra,
    }
    token = adapter.tokens[run_id]
    return await api.post(f"{V1}/agent/runs/{run_id}/state", json=body, headers=auth(token))


def due_later(app: FastAPI, seconds: float = 3600) -> None:
    app.state.reconciler.clock = lambda: utcnow() + timedelta(seconds=seconds)


# -- backoff -----------------------------------------------------------------------------------


class Fixed:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_backoff_doubles_up_to_the_cap_and_jitter_stretches_it() -> None:
    conf = Settings(retry_base_s=5, retry_cap_s=300, retry_jitter=0.2)
    assert [backoff(n, conf, Fixed(0.0)) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]
    assert backoff(1, conf, Fixed(1.0)) == pytest.approx(6.0)
    assert backoff(3, conf, Fixed(0.5)) == pytest.approx(22.0)
    assert backoff(20, conf, Fixed(1.0)) == pytest.approx(360.0)
    no_jitter = Settings(retry_base_s=2, retry_cap_s=5, retry_jitter=0)
    assert [backoff(n, no_jitter, Fixed(0.9)) for n in (1, 2, 3)] == [2, 4, 5]


def test_an_observed_failure_is_preempted_or_lost() -> None:
    assert observed_class("pod was evicted: the node was low on memory") == FailureClass.PREEMPTED
    assert observed_class("Preempted by a higher-priority pod") == FailureClass.PREEMPTED
    assert observed_class("the agent process died (signal 9)") == FailureClass.LOST
    assert (
        observed_class("Job was active longer than specified deadline (DeadlineExceeded)")
        == FailureClass.TIMEOUT
    )
    assert observed_class("no heartbeat from the agent for 61 s (limit 60 s)") == FailureClass.LOST
    assert observed_class("node n1 was lost (NodeLost): kubelet stopped posting") == FailureClass.PREEMPTED
    assert observed_class("the pod was taken off node n1 (DisruptionTarget)") == FailureClass.PREEMPTED
    assert observed_class("the run passed its deadline of 60 s (environmentConf.timeoutSeconds)") == (
        FailureClass.TIMEOUT
    )
    assert observed_class("image x:1 could not be pulled: Back-off pulling image") == FailureClass.INFRA
    assert not FailureClass.USER.retryable and not FailureClass.SPEC.retryable
    assert FailureClass.LOST.retryable and FailureClass.PREEMPTED.retryable


# -- the retry loop ----------------------------------------------------------------------------


async def test_a_lost_agent_is_retried_as_attempts_of_one_run(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    adapter, run_id = await start(app, api, tmp_path, retries=2)
    reconciler = app.state.reconciler
    for attempt in (1, 2):
        run = await dispatched(api, run_id, attempt)
        adapter.seen[run["externalId"]] = DEAD
        reconciler.clock = utcnow  # due later than now: nothing is claimed
        await reconciler.reconcile_once()
        run = await run_of(api, run_id)
        assert run["state"] == "queued" and run["attempt"] == attempt and run["retryAt"], run
        assert run["reason"].startswith(f"attempt {attempt}/3 failed (lost: the agent process died"), run
        assert f"attempt {attempt + 1} in " in run["reason"]
        assert run["failureClass"] == "lost" and run["externalId"] is None
        due_later(app)
        await reconciler.reconcile_once()
    run = await dispatched(api, run_id, 3)
    adapter.seen[run["externalId"]] = DEAD
    await reconciler.reconcile_once()
    run = await run_of(api, run_id)
    assert run["state"] == "failed" and run["retryAt"] is None
    assert run["reason"].startswith("attempt 3/3: the agent process died"), run["reason"]
    assert adapter.attempts == ["1", "2", "3"]
    tried = await ok(await api.get(f"{V1}/runs/{run_id}/attempts"))
    assert [(a["attempt"], a["state"], a["failureClass"]) for a in tried] == [
        (1, "failed", "lost"),
        (2, "failed", "lost"),
        (3, "failed", "lost"),
    ]
    assert all(a["reason"].startswith("the agent process died") for a in tried)
    assert [a["externalId"] for a in tried] == [f"remote:{run_id}:{n}" for n in (1, 2, 3)]
    history = [h["reason"] for h in run["history"]]
    assert "attempt 2/3 starting" in history and "attempt 3/3 starting" in history


async def test_the_backoff_is_honoured_and_the_quota_released_meanwhile(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    adapter, run_id = await start(app, api, tmp_path, retries=1)
    orch, reconciler = app.state.orchestrator, app.state.reconciler
    held = await orch.db(lambda ses: quota.reservation_of(ses, run_id))
    assert held is not None and held.state in quota.HELD
    run = await run_of(api, run_id)
    adapter.seen[run["externalId"]] = DEAD
    reconciler.clock = utcnow
    await reconciler.reconcile_once()
    backing_off = await orch.db(lambda ses: ses.get(m.Runtime, run_id))
    assert backing_off.retry_at is not None and backing_off.state == "queued"
    released = await orch.db(lambda ses: quota.reservation_of(ses, run_id))
    assert released is not None and released.state == quota.CANCELLED
    due = backing_off.retry_at
    reconciler.clock = lambda: due - timedelta(milliseconds=1)
    await reconciler.reconcile_once()
    assert (await run_of(api, run_id))["state"] == "queued"
    reconciler.clock = lambda: due
    await reconciler.reconcile_once()
    run = await dispatched(api, run_id, 2)
    assert run["state"] == "pending" and run["retryAt"] is None
    held = await orch.db(lambda ses: quota.reservation_of(ses, run_id))
    assert held is not None and held.state in quota.HELD


@pytest.mark.parametrize(
    ("cls", "extra", "retried"),
    [
        ("user", {}, False),
        ("spec", {}, False),
        ("user", {"retryable": True}, True),
        ("spec", {"retryable": True}, False),
        ("connection", {}, True),
        ("timeout", {}, True),
    ],
)
async def test_failure_classes_decide_the_retry(
    app: FastAPI,
    api: httpx.AsyncClient,
    tmp_path: Path,
    cls: str,
    extra: dict[str, Any],
    retried: bool,
) -> None:
    adapter, run_id = await start(app, api, tmp_path, retries=2)
    await ok(await report_failed(api, adapter, run_id, cls, **extra))
    run = await run_of(api, run_id)
    assert run["state"] == ("queued" if retried else "failed"), run
    assert run["failureClass"] == cls
    if not retried:
        assert run["reason"] == f"attempt 1/3: failed in stage operate: a {cls} error"
    (first,) = await ok(await api.get(f"{V1}/runs/{run_id}/attempts"))
    assert first["state"] == "failed" and first["retryable"] is retried and first["failureClass"] == cls
    # the same report again (an agent retrying its call) changes nothing
    await ok(await report_failed(api, adapter, run_id, cls, **extra))
    assert (await run_of(api, run_id))["state"] == run["state"]


async def test_a_user_stop_never_retries(app: FastAPI, api: httpx.AsyncClient, tmp_path: Path) -> None:
    adapter, run_id = await start(app, api, tmp_path, retries=3)
    await ok(await api.post(f"{V1}/runs/{run_id}/stop", json={"reason": "enough"}))
    due_later(app)
    await app.state.reconciler.reconcile_once()
    run = await run_of(api, run_id)
    assert run["state"] == "stopped" and run["attempt"] == 1
    (only,) = await ok(await api.get(f"{V1}/runs/{run_id}/attempts"))
    assert only["state"] == "stopped" and only["reason"] == "enough"


async def test_a_stop_while_backing_off_ends_the_run(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    adapter, run_id = await start(app, api, tmp_path, retries=3)
    await ok(await report_failed(api, adapter, run_id, "connection"))
    await ok(await api.post(f"{V1}/runs/{run_id}/stop"))
    due_later(app)
    await app.state.reconciler.reconcile_once()
    run = await run_of(api, run_id)
    assert run["state"] == "stopped" and run["attempt"] == 1
    (only,) = await ok(await api.get(f"{V1}/runs/{run_id}/attempts"))
    assert only["state"] == "failed" and only["failureClass"] == "connection"


# -- logs and re-runs --------------------------------------------------------------------------


async def test_each_attempt_keeps_its_log(app: FastAPI, api: httpx.AsyncClient, tmp_path: Path) -> None:
    adapter, run_id = await start(app, api, tmp_path, retries=1)
    run = await run_of(api, run_id)
    log = Path((await app.state.orchestrator.db(lambda ses: ses.get(m.Runtime, run_id))).log_path)
    await asyncio.to_thread(log.write_text, "attempt one says hello\n")
    await ok(await report_failed(api, adapter, run_id, "connection"))
    due_later(app)
    await app.state.reconciler.reconcile_once()
    await dispatched(api, run_id, 2)
    await asyncio.to_thread(log.write_text, "attempt two says hello\n")
    first = await api.get(f"{V1}/runs/{run_id}/attempts/1/log")
    second = await api.get(f"{V1}/runs/{run_id}/attempts/2/log")
    assert first.status_code == second.status_code == 200
    assert first.json() == {"attempt": 1, "text": "attempt one says hello\n", "truncated": False}
    assert second.json()["text"] == "attempt two says hello\n"
    assert (await api.get(f"{V1}/runs/{run_id}/attempts/3/log")).status_code == 404
    current = await ok(await api.get(f"{V1}/runs/{run_id}/logs"))
    assert current["text"] == "attempt two says hello\n"
    assert run["externalId"] != (await run_of(api, run_id))["externalId"]


async def test_a_rerun_is_the_next_attempt_of_an_ended_run(
    app: FastAPI, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    adapter, run_id = await start(app, api, tmp_path, retries=0)
    refused = await api.post(f"{V1}/runs/{run_id}/rerun")
    assert refused.status_code == 409 and "pending" in refused.json()["msg"]
    await ok(await report_failed(api, adapter, run_id, "user"))
    failed = await run_of(api, run_id)
    assert failed["state"] == "failed" and failed["maxAttempts"] == 1
    again = await ok(await api.post(f"{V1}/runs/{run_id}/rerun", json={"reason": "fixed the data"}))
    assert again["id"] == run_id and again["attempt"] == 2 and again["maxAttempts"] == 2
    assert again["state"] == "pending" and again["finishedAt"] is None and again["externalId"]
    assert adapter.attempts == ["1", "2"]
    spec = await ok(await api.get(f"{V1}/runs/{run_id}/spec"))
    assert spec["attempt"] == 2 and spec["runId"] == run_id
    tried = await ok(await api.get(f"{V1}/runs/{run_id}/attempts"))
    assert [(a["attempt"], a["state"]) for a in tried] == [(1, "failed"), (2, "running")]


async def test_attempts_of_another_spaces_run_are_missing(
    api: httpx.AsyncClient,
    world: World,  # noqa: F811 - the fixture
) -> None:
    bob = auth(world.tokens["bob"])
    hidden = await api.get(f"{V1}/runs/{world.a.run_id}/attempts", headers=bob)
    missing = await api.get(f"{V1}/runs/987654/attempts", headers=bob)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["msg"] == f"run {world.a.run_id} does not exist"
    assert (await api.get(f"{V1}/runs/{world.a.run_id}/attempts/1/log", headers=bob)).status_code == 404
    rerun = await api.post(f"{V1}/runs/{world.a.run_id}/rerun", headers=bob)
    assert rerun.status_code == 404
    mine = await api.get(f"{V1}/runs/{world.b.run_id}/attempts", headers=bob)
    assert mine.status_code == 200 and mine.json() == []


async def test_a_negative_max_retries_is_refused_naming_the_field(api: httpx.AsyncClient) -> None:
    await ok(await api.put(SP, json={"spaceName": "default"}))
    resp = await api.put(
        f"{SP}/nodes/n1", json={"nodeName": "n1", "operatorRuntimeType": "TRAIN", "maxRetries": -1}
    )
    assert resp.status_code == 422, resp.text
    assert "maxRetries" in resp.json()["msg"], resp.text


# -- the command line --------------------------------------------------------------------------


def test_describe_run_shows_the_attempts(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.control.cli.conftest import FakeControl, run_record
    from tests.control.cli.test_commands import API, atom

    fake = FakeControl()
    tried = [
        {"attempt": 1, "state": "failed", "reason": "no heartbeat from the agent for 31 s",
         "failureClass": "lost", "retryable": True, "startedAt": "2026-01-02T10:00:00",
         "finishedAt": "2026-01-02T10:01:00"},
        {"attempt": 2, "state": "running", "reason": "", "failureClass": None, "retryable": False,
         "startedAt": "2026-01-02T10:01:10", "finishedAt": None},
    ]  # fmt: skip
    fake.on("GET", f"{API}/runs/4", run_record(4, state="running", attempt=2, maxAttempts=3))
    fake.on("GET", f"{API}/runs/4/metrics", [])
    fake.on("GET", f"{API}/runs/4/attempts", tried)
    code, out, _ = atom(fake, capsys, "describe", "run", "4")
    assert code == 0 and "attempts" in out
    rows = [" ".join(line.split()) for line in out.splitlines()]
    assert any(r.startswith("1 failed lost (retryable)") and "no heartbeat" in r for r in rows), out
    assert any(r.startswith("2 running -") for r in rows), out
    fake.on("POST", f"{API}/runs/4/rerun", run_record(4, state="pending", attempt=3, maxAttempts=4))
    code, out, _ = atom(fake, capsys, "rerun", "4", "--reason", "data fixed")
    assert code == 0 and "run 4: attempt 3/4 pending" in out
    assert fake.bodies("POST", f"{API}/runs/4/rerun") == [{"reason": "data fixed"}]


def test_the_retention_sweep_removes_earlier_attempts_logs(tmp_path: Path) -> None:
    from control.run_logs import sweep
    from control.store.engine import Store

    settings = Settings(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'atom.db'}")
    store = Store(settings.database_url)
    try:
        logs = settings.runs_dir / "1" / "logs"
        logs.mkdir(parents=True)
        kept = [
            logs / "agent.log",
            logs / "agent.attempt-1.log",
            settings.runs_dir / "1" / "shipped.attempt-1.log",
        ]
        for path in kept:
            path.write_text("a line\n")
        with store.transaction() as ses:
            run = m.Runtime(
                node_name="n",
                operator_runtime_type="TRAIN",
                state="failed",
                token_hash="x",
                spec={},
                log_path=str(kept[0]),
                finished_at=utcnow() - timedelta(days=30),
            )
            ses.add(run)
            ses.flush()
            swept = sweep(session=ses, runs_dir=settings.runs_dir, days=7)
        assert swept.files == 3 and not any(p.exists() for p in kept)
    finally:
        store.dispose()
