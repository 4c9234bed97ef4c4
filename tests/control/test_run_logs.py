"""Shipped run logs: append at an offset without repeating bytes, read by offset after the agent's own
file is gone, only the run's own token may post, and retention deletes old logs and metric points."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from control import run_logs
from control.secrets import new_token, token_hash
from control.store import models as m
from control.store.models import utcnow

AG = "/api/v1/agent/runs"


def make_run(app: FastAPI, *, state: str = "running", ended_ago: timedelta | None = None) -> tuple[int, str]:
    """A run row with a fresh token and its log path under control's runs directory."""
    token = new_token()
    settings = app.state.orchestrator.settings
    with app.state.orchestrator.store.transaction() as ses:
        run = m.Runtime(
            node_name="n",
            operator_runtime_type="TRAIN",
            state=state,
            adapter="ray",
            token_hash=token_hash(token),
            spec={},
            finished_at=utcnow() - ended_ago if ended_ago is not None else None,
        )
        ses.add(run)
        ses.flush()
        run.log_path = str(settings.runs_dir / str(run.id) / "logs" / "agent.log")
        return run.id, token


def ship(api: httpx.AsyncClient, run_id: int, token: str, offset: int, text: str):  # type: ignore[no-untyped-def]
    auth = {"Authorization": f"Bearer {token}"}
    return api.post(f"{AG}/{run_id}/logs", json={"offset": offset, "text": text}, headers=auth)


def write_agent_files(runs_dir: Path, run_id: int, *, keep: bool = True) -> Path:
    """The run's log file as an adapter copies it, and a model file beside it; removed unless `keep`."""
    log = runs_dir / str(run_id) / "logs" / "agent.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("a copy\n")
    (runs_dir / str(run_id) / "model.tar.gz").write_bytes(b"model")
    if not keep:
        log.unlink()
    return log


def test_append_at_offset_keeps_each_byte_once(tmp_path: Path) -> None:
    assert run_logs.append(tmp_path, 7, offset=0, text="") == 0  # asking only
    assert run_logs.append(tmp_path, 7, offset=0, text="añb\n") == 5
    assert run_logs.append(tmp_path, 7, offset=0, text="añb\n") == 5  # the same batch again
    assert run_logs.append(tmp_path, 7, offset=0, text="añb\ncd\n") == 8  # a retry that grew
    assert run_logs.append(tmp_path, 7, offset=5, text="cd\nef\n") == 11  # overlaps what control has
    assert run_logs.shipped_path(tmp_path, 7).read_text() == "añb\ncd\nef\n"
    assert run_logs.received(tmp_path, 7) == 11


def test_a_gap_is_marked_once_and_offsets_go_on(tmp_path: Path) -> None:
    run_logs.append(tmp_path, 3, offset=0, text="one\ntw")
    assert run_logs.append(tmp_path, 3, offset=100, text="three\n") == 106
    assert run_logs.append(tmp_path, 3, offset=100, text="three\nfour\n") == 111  # retried after the gap
    text = run_logs.shipped_path(tmp_path, 3).read_text()
    assert text == "one\ntw\n[94 bytes of the agent's output were lost here]\nthree\nfour\n"
    assert run_logs.received(tmp_path, 3) == 111


async def test_a_retried_batch_is_not_duplicated_and_the_log_outlives_the_agents_file(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    run_id, token = make_run(app)
    lines = [f"line {i}\n" for i in range(200)]
    text = "".join(lines)
    first, second = text[:1000], text[1000:]
    assert (await ship(api, run_id, token, 0, "")).json() == {"received": 0}
    assert (await ship(api, run_id, token, 0, first)).json() == {"received": 1000}
    assert (await ship(api, run_id, token, 0, first)).json() == {"received": 1000}  # the answer was lost
    assert (await ship(api, run_id, token, 1000, second)).json() == {"received": len(text)}
    assert (await ship(api, run_id, token, 1000, second)).json() == {"received": len(text)}

    # the copy an adapter made in the run's log file is gone (a removed pod, a deleted directory)
    write_agent_files(app.state.orchestrator.settings.runs_dir, run_id, keep=False)
    with app.state.orchestrator.store.transaction() as ses:
        ses.get(m.Runtime, run_id).state = "succeeded"  # type: ignore[union-attr]

    unfinished = (await api.get(f"/api/v1/runs/{run_id}/logs", params={"offset": len(text)})).json()
    assert unfinished["text"] == "" and not unfinished["eof"]  # the agent may still send its last lines
    last = await api.post(
        f"{AG}/{run_id}/logs",
        json={"offset": len(text), "text": "", "final": True},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert last.json() == {"received": len(text)}

    got, offset = "", 0
    while True:
        page = (await api.get(f"/api/v1/runs/{run_id}/logs", params={"offset": offset, "limit": 333})).json()
        assert page["offset"] == offset
        got += page["text"]
        offset = page["nextOffset"]
        if page["eof"]:
            break
    assert got == text
    middle = (await api.get(f"/api/v1/runs/{run_id}/logs", params={"offset": 7, "limit": 7})).json()
    assert middle["text"] == lines[1] and middle["nextOffset"] == 14 and not middle["eof"]


async def test_only_the_runs_own_token_may_ship_its_log(app: FastAPI, api: httpx.AsyncClient) -> None:
    run_id, token = make_run(app)
    other_id, other_token = make_run(app)
    assert (await ship(api, run_id, other_token, 0, "forged\n")).status_code == 401
    assert (await api.post(f"{AG}/{run_id}/logs", json={"offset": 0, "text": "x\n"})).status_code == 401
    assert (await ship(api, run_id, token, 0, "mine\n")).status_code == 200
    assert (await ship(api, other_id, other_token, 0, "theirs\n")).status_code == 200
    page = (await api.get(f"/api/v1/runs/{run_id}/logs")).json()
    assert page["text"] == "mine\n"
    assert not run_logs.shipped_path(app.state.orchestrator.settings.runs_dir, 999).exists()


async def test_retention_deletes_old_logs_and_metrics_and_keeps_recent_ones(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    settings = app.state.orchestrator.settings
    days = settings.log_retention_days
    old, old_token = make_run(app, state="succeeded", ended_ago=timedelta(days=days + 1))
    recent, recent_token = make_run(app, state="failed", ended_ago=timedelta(days=days - 1))
    running, running_token = make_run(app, state="running")
    for run_id, token in ((old, old_token), (recent, recent_token), (running, running_token)):
        assert (await ship(api, run_id, token, 0, f"run {run_id}\n")).status_code == 200
        write_agent_files(settings.runs_dir, run_id)
        with app.state.orchestrator.store.transaction() as ses:
            ses.add(m.RunMetric(runtime_id=run_id, step=1, name="loss", value=0.5))

    await app.state.reconciler.reconcile_once()

    def metric_count(run_id: int) -> int:
        with app.state.orchestrator.store.transaction() as ses:
            return int(ses.scalar(select(func.count()).where(m.RunMetric.runtime_id == run_id)) or 0)

    assert metric_count(old) == 0
    assert metric_count(recent) == 1 and metric_count(running) == 1
    assert not (settings.runs_dir / str(old) / "logs" / "agent.log").exists()
    assert not run_logs.shipped_path(settings.runs_dir, old).exists()
    assert (settings.runs_dir / str(old) / "model.tar.gz").exists()  # logs only, not what the run made
    for run_id in (recent, running):
        assert run_logs.shipped_path(settings.runs_dir, run_id).read_text() == f"run {run_id}\n"
        assert (settings.runs_dir / str(run_id) / "logs" / "agent.log").exists()
    page = (await api.get(f"/api/v1/runs/{old}/logs")).json()
    assert page["text"] == "" and page["eof"]
    assert (await api.get(f"/api/v1/runs/{old}/metrics")).json() == []
