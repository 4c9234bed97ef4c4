"""Ray Train's rank 0 posts metrics live; the steps control did not take (it was away) are listed,
so the agent sends them after training through its own retrying, buffered path."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from runtime_agent.train import fresh_summary, read_metrics_file, undelivered_steps
from runtime_agent.train_worker import TrainWorker, WorkerHandle, undelivered_file


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once closed


def test_steps_control_did_not_take_are_listed_for_the_agent(tmp_path: Path) -> None:
    summary = tmp_path / "summary" / "metrics.jsonl"
    fresh_summary(summary)
    handle = WorkerHandle(frames={}, run_id=7, control_url=_dead_url(), token="t", summary_file=str(summary))
    worker = TrainWorker(handle, rank=0, world=1)
    for loss in (0.9, 0.5, 0.3):
        worker.publish({"loss": loss})
    assert [step for step, _ in read_metrics_file(summary)] == [1, 2, 3]
    assert undelivered_steps(summary) == {1, 2, 3}

    fresh_summary(summary)  # a new training starts clean
    assert undelivered_steps(summary) == set() and not Path(undelivered_file(summary)).exists()


def test_delivered_steps_are_not_listed(tmp_path: Path) -> None:
    summary = tmp_path / "metrics.jsonl"
    handle = WorkerHandle(frames={}, run_id=7, control_url=None, summary_file=str(summary))
    TrainWorker(handle, rank=0, world=1).publish({"loss": 1.0})
    assert json.loads(summary.read_text())["step"] == 1
    assert undelivered_steps(summary) == set()
