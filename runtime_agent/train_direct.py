"""The `direct` executor: a `train_loop` in the agent process itself, as rank 0 of 1, without Ray.

Each `report` reaches the run's callbacks at once (live metrics), rank 0's lines go to
`metrics.jsonl`, and every checkpointed report is copied under the run's checkpoint storage, the
last one into the model directory: the same files the Ray executor leaves.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime_agent._aio import in_daemon_thread
from runtime_agent.api import TrainResult
from runtime_agent.errors import TrainingFailed
from runtime_agent.train_worker import TrainWorker, WorkerHandle, installed

if TYPE_CHECKING:
    from runtime_agent.context import OperatorContext
    from runtime_agent.train import TrainSetup

logger = logging.getLogger("runtime_agent.train")


def cuda_usable() -> bool:
    """True when torch sees a CUDA device (the one CUDA_VISIBLE_DEVICES gives this process)."""
    try:
        import torch  # deferred: cost
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


async def run_direct(
    train_loop: Callable[[dict[str, Any]], Any],
    config: dict[str, Any],
    frames: dict[str, Any],
    ctx: OperatorContext,
    setup: TrainSetup,
    summary: Path,
) -> TrainResult:
    """Run `train_loop(config)` here; returns the final metrics, score and checkpoint.

    Raises:
        TrainingFailed: `train_loop` raised.
    """
    from runtime_agent.train import TIMING_FILE, pick_score  # deferred: train imports this module

    plan = setup.plan
    use_gpu = bool(plan and plan.use_gpu)
    if plan is not None and plan.workers > 1:
        logger.warning(
            "direct executor: one worker in the agent process although %d were planned "
            "(trainExecutor ray runs them all)",
            plan.workers,
        )
    if use_gpu and not await in_daemon_thread(cuda_usable):
        logger.warning("the run asked for a GPU but torch sees none here; training on CPU")
        use_gpu = False
    base = setup.storage_path / f"run-{ctx.run_id}"
    checkpoints = base / "direct"
    shutil.rmtree(checkpoints, ignore_errors=True)
    checkpoints.mkdir(parents=True)
    final: dict[str, Any] = {"metrics": {}, "checkpoint": None}

    def on_report(values: dict[str, float], model_dir: str | None) -> None:
        ctx.report(values)
        final["metrics"] = values
        if model_dir is not None:
            dest = checkpoints / f"checkpoint_{len(list(checkpoints.iterdir())):06d}"
            shutil.copytree(model_dir, dest)
            final["checkpoint"] = dest

    handle = WorkerHandle(
        frames=frames, run_id=ctx.run_id, summary_file=str(summary), timing_file=str(base / TIMING_FILE)
    )
    worker = TrainWorker(handle, rank=0, world=1, on_report=on_report, use_gpu=use_gpu)
    logger.info(
        "direct train: 1 worker in the agent process, %s, %s",
        "GPU" if use_gpu else "CPU",
        ", ".join(f"{role}={len(df)} rows" for role, df in frames.items()) or "no data",
    )

    def fit() -> None:
        with installed(worker):
            train_loop(dict(config))

    started = time.perf_counter()
    try:
        await in_daemon_thread(fit)
    except Exception as exc:
        raise TrainingFailed("train_loop", exc) from exc
    finally:
        setup.timings.add("train", time.perf_counter() - started)
    took = time.perf_counter() - started
    checkpoint: Path | None = final["checkpoint"]
    if checkpoint is not None:
        shutil.copytree(checkpoint, ctx.model_dir, dirs_exist_ok=True)
    else:
        logger.warning("train_loop reported no checkpoint: pass model_dir= to runtime_agent.train.report")
    metrics: dict[str, float] = final["metrics"]
    logger.info("direct train finished in %.1f s: %s", took, metrics)
    return TrainResult(
        metrics=metrics,
        score=pick_score(metrics, ctx.model_conf),
        model_dir=ctx.model_dir,
        checkpoint_path=str(checkpoint) if checkpoint else None,
        num_workers=1,
        use_gpu=use_gpu,
        fit_seconds=took,
    )


__all__ = ["run_direct"]
