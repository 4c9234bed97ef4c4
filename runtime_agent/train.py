"""Training for TRAIN operators: pick an executor from the run's resources, run the operator's
`train_loop`, and leave its final checkpoint in the model directory; also the helpers a
`train_loop` calls (`get_shard`, `report`, `world_rank`, `world_size`, `device`, `roles`).

Executors (environmentConf `trainExecutor`, else `ATOM_TRAIN_EXECUTOR`, else `auto`):

- `direct` (alias `local`): the loop runs in the agent process as rank 0 of 1, with no Ray at all;
  metrics go to control live, `metrics.jsonl` and checkpoints are written as on Ray.
  `device()` is the GPU CUDA_VISIBLE_DEVICES gives when the run asked for one.
- `ray`: Ray Train's TorchTrainer on the cluster at RAY_ADDRESS (a private local Ray only when
  RAY_ADDRESS is unset), one worker per planned worker (`control.schemas.resources.worker_plan`).
- `auto`: `direct` when the plan has one worker, else `ray`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from control.schemas.resources import ResourceRequest, WorkerPlan, request_of, worker_plan
from runtime_agent._aio import in_daemon_thread
from runtime_agent.errors import OperatorFailed, SpecError, describe_exception
from runtime_agent.timings import StageTimings
from runtime_agent.train_worker import (
    HANDLE_KEY,
    TrainWorker,
    WorkerHandle,
    device,
    get_shard,
    report,
    roles,
    undelivered_file,
    world_rank,
    world_size,
)

if TYPE_CHECKING:
    from runtime_agent.api import TrainResult
    from runtime_agent.context import OperatorContext

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
TIMING_FILE = "loop.json"
"""Rank 0's loop start and end (wall clock), beside the run's checkpoints."""
EXECUTORS = ("auto", "direct", "ray")
ALIASES = {"local": "direct"}


def pick_score(metrics: Mapping[str, float], model_conf: Mapping[str, Any]) -> float:
    """`metrics[modelConf.scoreMetric or "score"]`, else `metrics["accuracy"]`, else 0."""
    for key in (str(model_conf.get("scoreMetric") or "score"), "accuracy"):
        if key in metrics:
            return float(metrics[key])
    return 0.0


def read_metrics_file(path: Path) -> list[tuple[int, dict[str, float]]]:
    """The `(step, values)` records in a metrics.jsonl (bad lines skipped)."""
    records: list[tuple[int, dict[str, float]]] = []
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            records.append((int(record["step"]), {str(k): float(v) for k, v in record["values"].items()}))
        except (ValueError, KeyError, TypeError):
            continue
    return records


def fresh_summary(summary: Path) -> None:
    """An empty summary dir for a new training: no metrics or undelivered steps of an earlier one."""
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.unlink(missing_ok=True)
    Path(undelivered_file(summary)).unlink(missing_ok=True)


def undelivered_steps(summary: Path) -> set[int]:
    """The steps rank 0 could not POST to control live (control was away): the agent sends them."""
    try:
        text = Path(undelivered_file(summary)).read_text(encoding="utf-8")
    except OSError:
        return set()
    return {int(line) for line in text.split() if line.isdigit()}


def read_loop_times(path: Path) -> tuple[float, float] | None:
    """Rank 0's `(start, end)` wall-clock times, when its timing file reached this host."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return float(record["start"]), float(record["end"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def local_gpus() -> int:
    """NVIDIA GPUs this process may use: the driver's devices, narrowed by CUDA_VISIBLE_DEVICES.

    On Linux the driver's `/proc` entries answer without importing torch or starting CUDA;
    elsewhere torch is asked (0 without torch or CUDA).
    """
    driver = Path("/proc/driver/nvidia/gpus")
    if sys.platform.startswith("linux"):
        present = len(list(driver.iterdir())) if driver.is_dir() else 0
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is None:
            return present
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        ids = ids[: ids.index("-1")] if "-1" in ids else ids
        return min(present, len(ids))
    try:
        import torch  # deferred: cost
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def plan_for(service_info: Any, environment_conf: Mapping[str, Any] | None = None) -> WorkerPlan:
    """The run's training workers: from its service info, or (with none) one worker, on this
    machine's GPU when it has one.

    Args:
        service_info: the task spec's `service_info` (None: no resources were asked for).
        environment_conf: the operator's environmentConf (`numWorkers`, `useGpu`, `cpusPerWorker`).
    """
    if service_info is None:
        return worker_plan(ResourceRequest(gpu=min(1, local_gpus())), environment_conf)
    request = request_of(service_info)
    return worker_plan(request, environment_conf)


def resolve_executor(
    requested: str | None,
    environment_conf: Mapping[str, Any],
    default: str | None,
    plan: WorkerPlan,
) -> str:
    """`direct` or `ray`: the requested executor, else environmentConf `trainExecutor`, else the
    agent's `ATOM_TRAIN_EXECUTOR`; `auto` is `direct` for one worker and `ray` for more.

    Raises:
        SpecError: the name is not auto, direct, ray (or local).
    """
    named = requested or environment_conf.get("trainExecutor") or default or "auto"
    value = ALIASES.get(str(named).strip().lower(), str(named).strip().lower())
    if value not in EXECUTORS:
        raise SpecError(
            f"train executor {named!r} is not one of auto, direct, ray (local = direct): "
            "fix environmentConf.trainExecutor or ATOM_TRAIN_EXECUTOR"
        )
    if value == "auto":
        return "direct" if plan.workers == 1 else "ray"
    return value


@dataclass
class TrainSetup:
    """How the agent runs one training."""

    executor: str | None = None
    """`auto`, `direct` (`local`), `ray`; None: environmentConf or `default_executor` decides."""
    default_executor: str = "auto"
    """`ATOM_TRAIN_EXECUTOR`."""
    plan: WorkerPlan | None = None
    """The run's workers (None: `plan_for(None, environmentConf)`)."""
    storage_path: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "atom-ray")
    """Checkpoints of both executors (Ray Train's storage); under the run's data dir."""
    num_cpus: int | None = None
    """CPUs of a private local Ray (only when RAY_ADDRESS is unset)."""
    control_url: str | None = None
    token: str | None = field(default=None, repr=False)
    timings: StageTimings = field(default_factory=StageTimings)


def train_config(op: Any, ctx: OperatorContext) -> dict[str, Any]:
    """The config dict `train_loop` receives."""
    config: dict[str, Any] = {**ctx.operator_conf, "epochs": ctx.epochs, "modelConf": ctx.model_conf}
    config["runId"] = ctx.run_id
    extra = op.train_config(ctx) if hasattr(op, "train_config") else {}
    config.update(extra or {})
    return config


async def run_training(op: Any, ctx: OperatorContext, setup: TrainSetup) -> TrainResult:
    """Run `type(op).train_loop` on the collected data, then fill `ctx.model_dir` with the checkpoint.

    Args:
        op: the TrainOperator instance (its class's `train_loop` is what runs).
        ctx: the run's context (collected frames, configs, model dir).
        setup: executor, plan and Ray settings.

    Returns:
        The final metrics, score and timings.

    Raises:
        TrainingFailed: `train_loop` raised in a worker.
        SpecError: an unknown executor, or a request the Ray cluster can never satisfy.
    """
    train_loop = type(op).train_loop
    if not callable(train_loop):
        raise OperatorFailed("train_loop", f"{type(op).__name__}.train_loop is not a function")
    if setup.plan is None:
        setup.plan = await in_daemon_thread(plan_for, None, ctx.environment_conf)
    plan = setup.plan
    executor = resolve_executor(setup.executor, ctx.environment_conf, setup.default_executor, plan)
    summary = ctx.summary_dir / METRICS_FILE
    fresh_summary(summary)
    config = train_config(op, ctx)
    frames = await in_daemon_thread(lambda: {role: ctx.frame(role) for role in ctx.collected_roles})
    ctx.stage = "train"
    if executor == "direct":
        from runtime_agent.train_direct import run_direct

        return await run_direct(train_loop, config, frames, ctx, setup, summary)
    from runtime_agent.train_ray import run_ray

    return await run_ray(train_loop, config, frames, ctx, setup, summary)


def shutdown_ray() -> None:
    """Leave Ray: stop the private instance this process started, or disconnect from a cluster."""
    from runtime_agent.train_ray import shutdown_ray as leave

    leave()


__all__ = [
    "HANDLE_KEY",
    "METRICS_FILE",
    "TrainSetup",
    "TrainWorker",
    "WorkerHandle",
    "describe_exception",
    "device",
    "get_shard",
    "pick_score",
    "plan_for",
    "report",
    "resolve_executor",
    "roles",
    "run_training",
    "shutdown_ray",
    "world_rank",
    "world_size",
]
