"""The worker side of training: what a `train_loop` calls (`get_shard`, `report`, `world_rank`,
`world_size`, `device`, `roles`) and the per-process state behind those calls.

Both executors install one `TrainWorker` per training process: Ray Train workers in `ray_entry`, the
direct executor in the agent process itself (rank 0 of 1, `on_report` set). Import these helpers
from `runtime_agent.train`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runtime_agent.context import clean_metrics

if TYPE_CHECKING:
    import pandas as pd
    import torch

logger = logging.getLogger("runtime_agent.train")

HANDLE_KEY = "_atom"
"""The train_loop config key that carries the agent's worker handle (removed before the user's code)."""


@dataclass
class WorkerHandle:
    """What every worker needs from the agent; travels through the object store.

    Attributes:
        frames: role -> an ObjectRef of that role's DataFrame (the `direct` executor: the DataFrame).
        run_id: the runtime id.
        control_url: control's URL when metrics go live, else None.
        token: the run token for those POSTs (never logged).
        summary_file: `metrics.jsonl` path (skipped where that directory does not exist).
        timing_file: where rank 0 records when its loop started and ended (skipped where that
            directory does not exist, e.g. on another host).
    """

    frames: dict[str, Any]
    run_id: int
    control_url: str | None = None
    token: str | None = field(default=None, repr=False)
    summary_file: str | None = None
    timing_file: str | None = None


class TrainWorker:
    """Per-process state of a training worker (or of the direct executor's single 'worker')."""

    def __init__(
        self,
        handle: WorkerHandle,
        *,
        rank: int,
        world: int,
        on_report: Callable[[dict[str, float], str | None], None] | None = None,
        use_gpu: bool = False,
    ) -> None:
        self.handle = handle
        self.rank = rank
        self.world = world
        self.on_report = on_report
        """Set by the direct executor (metrics go straight to the agent); None in a Ray worker."""
        self.use_gpu = use_gpu
        """The direct executor's device choice (a Ray worker asks Ray Train)."""
        self.step = 0
        self._frames: dict[str, pd.DataFrame] = {}
        self._client: Any = None

    def frame(self, role: str) -> pd.DataFrame:
        if role not in self.handle.frames:
            raise KeyError(
                f"no data for role {role!r} in this run (roles with data: {sorted(self.handle.frames)})"
            )
        if role not in self._frames:
            value = self.handle.frames[role]
            if self.on_report is None:  # a Ray worker: the value is an ObjectRef
                import ray  # deferred: only Ray workers get here

                value = ray.get(value)
            self._frames[role] = value
        return self._frames[role]

    def publish(self, values: dict[str, float]) -> None:
        """Rank 0: append to metrics.jsonl and POST live to control when it is there."""
        self.step += 1
        record = {"step": self.step, "values": values, "time": time.time()}
        path = self.handle.summary_file
        if path and os.path.isdir(os.path.dirname(path)):
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        if self.handle.control_url and self.on_report is None:
            try:
                from control.client import ControlClient  # deferred: only live workers post
                from control.schemas import MetricReport

                if self._client is None:
                    self._client = ControlClient(self.handle.control_url, token=self.handle.token, timeout=10)
                self._client.report_metrics(self.handle.run_id, MetricReport(step=self.step, values=values))
            except Exception as exc:  # training goes on; the agent sends this step after training
                logger.warning("live metrics for step %d not delivered: %s", self.step, exc)
                if path and os.path.isdir(os.path.dirname(path)):
                    with open(undelivered_file(path), "a", encoding="utf-8") as fh:
                        fh.write(f"{self.step}\n")


def undelivered_file(summary_file: str | os.PathLike[str]) -> str:
    """Where rank 0 lists the steps control did not take live (beside metrics.jsonl)."""
    return os.path.join(os.path.dirname(os.fspath(summary_file)), "undelivered-steps.txt")


_WORKER: TrainWorker | None = None


def _current() -> TrainWorker:
    if _WORKER is None:
        raise RuntimeError(
            "runtime_agent.train helpers work inside a train_loop started by the Atom agent "
            "(Ray Train or the direct executor)"
        )
    return _WORKER


def roles() -> list[str]:
    """The roles with data for this run (`source`, `test_source`, `init_data`)."""
    return sorted(_current().handle.frames)


def world_rank() -> int:
    """This worker's rank (0 .. world_size()-1)."""
    return _current().rank


def world_size() -> int:
    """The number of training workers."""
    return _current().world


def get_shard(role: str = "source", *, whole: bool = False) -> pd.DataFrame:
    """This worker's rows of `role`: a contiguous 1/world_size() slice, or all rows with `whole`.

    Args:
        role: `source`, `test_source` or `init_data`.
        whole: return every row (e.g. to compute class lists or normalisation stats).

    Raises:
        KeyError: the run has no data for `role` (see `roles()`).
    """
    worker = _current()
    df = worker.frame(role)
    if whole or worker.world == 1:
        return df
    n = len(df)
    start, end = n * worker.rank // worker.world, n * (worker.rank + 1) // worker.world
    return df.iloc[start:end]


def device() -> torch.device:
    """The torch device this worker should use (its GPU when the run asked for GPUs, else CPU)."""
    import torch  # deferred: only training code needs torch

    worker = _current()
    if worker.on_report is None:
        from ray.train.torch import get_device  # deferred: Ray workers only

        return get_device()
    if worker.use_gpu and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def report(metrics: Mapping[str, Any], model_dir: str | os.PathLike[str] | None = None) -> None:
    """Report metrics (every worker must call it equally often) and optionally checkpoint a model.

    Wraps `ray.train.report(metrics, checkpoint=Checkpoint.from_directory(model_dir))`; only rank 0's
    `model_dir` is kept. Rank 0 also records the metrics live (control, metrics.jsonl). The last
    checkpointed report's files end up in the run's model directory and its metrics are final.

    Args:
        metrics: name -> number.
        model_dir: a directory holding the model files to checkpoint (None: metrics only).
    """
    worker = _current()
    values = clean_metrics(metrics, logger)
    if worker.on_report is not None:
        worker.publish(values)
        worker.on_report(values, None if model_dir is None else os.fspath(model_dir))
        return
    import ray.train  # deferred: Ray workers only

    checkpoint = None
    if model_dir is not None and worker.rank == 0:
        checkpoint = ray.train.Checkpoint.from_directory(os.fspath(model_dir))
    if worker.rank == 0:
        worker.publish(values)
    ray.train.report(dict(values), checkpoint=checkpoint)


@contextlib.contextmanager
def installed(worker: TrainWorker) -> Iterator[TrainWorker]:
    """Make `worker` the one the helpers see while the block runs; rank 0 records loop times."""
    global _WORKER
    _WORKER = worker
    timing = worker.handle.timing_file if worker.rank == 0 else None
    began = time.time()
    try:
        yield worker
    finally:
        _WORKER = None
        if timing and os.path.isdir(os.path.dirname(timing)):
            with contextlib.suppress(OSError), open(timing, "w", encoding="utf-8") as fh:
                json.dump({"start": began, "end": time.time()}, fh)


def ray_entry(train_loop: Callable[[dict[str, Any]], Any], config: dict[str, Any]) -> None:
    """The function each Ray Train worker runs: install the handle, then call the user's loop."""
    import ray
    import ray.train

    config = dict(config)
    handle: WorkerHandle = ray.get(config.pop(HANDLE_KEY))
    context = ray.train.get_context()
    with installed(TrainWorker(handle, rank=context.get_world_rank(), world=context.get_world_size())):
        train_loop(config)


__all__ = [
    "HANDLE_KEY",
    "TrainWorker",
    "WorkerHandle",
    "device",
    "get_shard",
    "installed",
    "ray_entry",
    "report",
    "roles",
    "world_rank",
    "world_size",
]
