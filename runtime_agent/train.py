"""Ray Train for TRAIN operators: the agent side (start Ray, ship data, fit, collect the checkpoint)
and the helpers a `train_loop` calls inside each worker (`get_shard`, `report`, `world_rank`).

Data reaches workers through Ray's object store: the agent `ray.put`s each role's collected
DataFrame once, and `get_shard(role)` in a worker fetches it (zero-copy for numeric columns) and
slices out that worker's contiguous share of rows. Rank 0 appends every `report` to
`<summary dir>/metrics.jsonl` and, when the run has control, POSTs it live as a MetricReport.

The `local` executor runs `train_loop` once in the agent process (rank 0 of 1) with the same
helpers, for fast operator tests and `atom-runtime dev --local-train`; production uses `ray`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime_agent._aio import DedicatedThread, in_daemon_thread
from runtime_agent.api import TrainResult
from runtime_agent.context import clean_metrics
from runtime_agent.errors import OperatorFailed, TrainingFailed, describe_exception

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from runtime_agent.context import OperatorContext

logger = logging.getLogger(__name__)

RAY_THREAD = DedicatedThread("atom-ray")
"""Starts Ray and runs `fit()`: Ray's processes must outlive the thread that started them."""
HANDLE_KEY = "_atom"
"""The train_loop config key that carries the agent's worker handle (removed before the user's code)."""
METRICS_FILE = "metrics.jsonl"


# -- worker side --------------------------------------------------------------------------------


@dataclass
class WorkerHandle:
    """What every worker needs from the agent; travels through the object store.

    Attributes:
        frames: role -> an ObjectRef of that role's DataFrame (the `local` executor: the DataFrame).
        run_id: the runtime id.
        control_url: control's URL when metrics go live, else None.
        token: the run token for those POSTs (never logged).
        summary_file: `metrics.jsonl` path (skipped where that directory does not exist).
    """

    frames: dict[str, Any]
    run_id: int
    control_url: str | None = None
    token: str | None = field(default=None, repr=False)
    summary_file: str | None = None


class _Worker:
    """Per-process state of a training worker (or of the local executor's single 'worker')."""

    def __init__(
        self,
        handle: WorkerHandle,
        *,
        rank: int,
        world: int,
        on_report: Callable[[dict[str, float], str | None], None] | None = None,
    ) -> None:
        self.handle = handle
        self.rank = rank
        self.world = world
        self.on_report = on_report
        """Set by the local executor (metrics go straight to the agent); None in a Ray worker."""
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
            except Exception as exc:  # live metrics are best effort; training goes on
                logger.warning("live metrics for step %d not delivered: %s", self.step, exc)


_WORKER: _Worker | None = None


def _current() -> _Worker:
    if _WORKER is None:
        raise RuntimeError(
            "runtime_agent.train helpers work inside a train_loop started by the Atom agent "
            "(Ray Train or the local executor)"
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
    """The torch device this worker should use (its GPU when it has one, else CPU)."""
    import torch  # deferred: only training code needs torch

    if _current().on_report is None:
        from ray.train.torch import get_device  # deferred: Ray workers only

        return get_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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


def _ray_entry(train_loop: Callable[[dict[str, Any]], Any], config: dict[str, Any]) -> None:
    """The function each Ray Train worker runs: install the handle, then call the user's loop."""
    import ray
    import ray.train

    global _WORKER
    config = dict(config)
    handle: WorkerHandle = ray.get(config.pop(HANDLE_KEY))
    context = ray.train.get_context()
    _WORKER = _Worker(handle, rank=context.get_world_rank(), world=context.get_world_size())
    try:
        train_loop(config)
    finally:
        _WORKER = None


# -- agent side ---------------------------------------------------------------------------------


def pick_score(metrics: Mapping[str, float], model_conf: Mapping[str, Any]) -> float:
    """`metrics[modelConf.scoreMetric or "score"]`, else `metrics["accuracy"]`, else 0."""
    for key in (str(model_conf.get("scoreMetric") or "score"), "accuracy"):
        if key in metrics:
            return float(metrics[key])
    return 0.0


def ray_env_defaults() -> None:
    """Environment Ray should see unless the user set it: no auth token, plain log prefixes."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def local_gpus() -> int:
    """CUDA devices torch sees on this machine (0 without torch or CUDA)."""
    try:
        import torch  # deferred: cost
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def start_ray(num_cpus: int | None = None) -> tuple[float, bool]:
    """Start a local Ray instance, or connect to RAY_ADDRESS's cluster.

    Returns:
        (seconds `ray.init` took, whether this call started Ray: then the caller shuts it down).
    """
    import ray  # deferred: Ray costs seconds to import; only TRAIN runs need it

    if ray.is_initialized():
        return 0.0, False
    ray_env_defaults()
    address = os.environ.get("RAY_ADDRESS")
    if address:
        logger.info("ray: connecting to the cluster at %s", address)
        started = time.perf_counter()
        ray.init(address=address, log_to_driver=True)
    else:
        gpus = local_gpus()
        logger.info("ray: starting a local instance (cpus=%s, gpus=%d)", num_cpus or "all", gpus)
        started = time.perf_counter()
        ray.init(
            address="local", num_cpus=num_cpus, num_gpus=gpus, include_dashboard=False, log_to_driver=True
        )
    took = time.perf_counter() - started
    logger.info("ray: ready in %.1f s (%s)", took, ray.cluster_resources())
    return took, True


def scaling(environment_conf: Mapping[str, Any]) -> tuple[int, bool, dict[str, float] | None]:
    """(num_workers, use_gpu, resources_per_worker): one worker per GPU when GPUs exist, else 1 on CPU.

    environmentConf may override with `numWorkers`, `useGpu`, `cpusPerWorker`.
    """
    import ray  # deferred: see start_ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    use_gpu = bool(environment_conf.get("useGpu", gpus > 0)) and gpus > 0
    workers = int(environment_conf.get("numWorkers") or (gpus if use_gpu else 1))
    cpus = environment_conf.get("cpusPerWorker")
    return max(1, workers), use_gpu, ({"CPU": float(cpus)} if cpus else None)


def _unwrap_failure(exc: BaseException) -> BaseException:
    """The user's exception inside a Ray Train failure (first failing rank), if it can be found."""
    failures = getattr(exc, "worker_failures", None)
    if failures:
        exc = failures[sorted(failures)[0]]
    exc = getattr(exc, "controller_failure", None) or exc
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


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


@dataclass
class TrainSetup:
    """How the agent runs one training."""

    executor: str = "ray"
    """`ray` (Ray Train TorchTrainer) or `local` (train_loop in this process)."""
    storage_path: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "atom-ray")
    """Ray Train's storage (checkpoints); under the run's data dir."""
    num_cpus: int | None = None
    control_url: str | None = None
    token: str | None = field(default=None, repr=False)


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
        setup: executor and Ray settings.

    Returns:
        The final metrics, score and timings.

    Raises:
        TrainingFailed: `train_loop` raised in a worker.
    """
    train_loop = type(op).train_loop
    if not callable(train_loop):
        raise OperatorFailed("train_loop", f"{type(op).__name__}.train_loop is not a function")
    summary = ctx.summary_dir / METRICS_FILE
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.unlink(missing_ok=True)
    config = train_config(op, ctx)
    frames = await in_daemon_thread(lambda: {role: ctx.frame(role) for role in ctx.collected_roles})
    ctx.stage = "train"
    if setup.executor == "local":
        return await _run_local(train_loop, config, frames, ctx, summary, setup.storage_path)
    return await _run_ray(train_loop, config, frames, ctx, setup, summary)


async def _run_local(
    train_loop: Callable[[dict[str, Any]], Any],
    config: dict[str, Any],
    frames: dict[str, Any],
    ctx: OperatorContext,
    summary: Path,
    storage: Path,
) -> TrainResult:
    checkpoints = storage / f"run-{ctx.run_id}" / "local"
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

    handle = WorkerHandle(frames=frames, run_id=ctx.run_id, summary_file=str(summary))
    started = time.perf_counter()

    def fit() -> None:
        global _WORKER
        _WORKER = _Worker(handle, rank=0, world=1, on_report=on_report)
        try:
            train_loop(dict(config))
        finally:
            _WORKER = None

    try:
        await in_daemon_thread(fit)
    except Exception as exc:
        raise TrainingFailed("train_loop", exc) from exc
    took = time.perf_counter() - started
    checkpoint: Path | None = final["checkpoint"]
    if checkpoint is not None:
        shutil.copytree(checkpoint, ctx.model_dir, dirs_exist_ok=True)
    metrics: dict[str, float] = final["metrics"]
    logger.info("local training finished in %.1f s: %s", took, metrics)
    return TrainResult(
        metrics=metrics,
        score=pick_score(metrics, ctx.model_conf),
        model_dir=ctx.model_dir,
        checkpoint_path=str(checkpoint) if checkpoint else None,
        fit_seconds=took,
    )


async def _run_ray(
    train_loop: Callable[[dict[str, Any]], Any],
    config: dict[str, Any],
    frames: dict[str, Any],
    ctx: OperatorContext,
    setup: TrainSetup,
    summary: Path,
) -> TrainResult:
    ray_seconds, _ = await RAY_THREAD.run(start_ray, setup.num_cpus)
    storage = str(ctx.environment_conf.get("storagePath") or setup.storage_path)

    def prepare() -> Any:
        import ray  # deferred: see start_ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        workers, use_gpu, resources = scaling(ctx.environment_conf)
        refs = {role: ray.put(df) for role, df in frames.items()}
        handle = WorkerHandle(
            frames=refs,
            run_id=ctx.run_id,
            control_url=setup.control_url,
            token=setup.token,
            summary_file=str(summary),
        )
        config[HANDLE_KEY] = ray.put(handle)
        logger.info(
            "ray train: %d worker(s), %s, %s",
            workers,
            "GPU" if use_gpu else "CPU",
            ", ".join(f"{role}={len(df)} rows" for role, df in frames.items()) or "no data",
        )
        return TorchTrainer(
            train_loop_per_worker=functools.partial(_ray_entry, train_loop),
            train_loop_config=config,
            scaling_config=ScalingConfig(
                num_workers=workers, use_gpu=use_gpu, resources_per_worker=resources
            ),
            run_config=RunConfig(storage_path=storage, name=f"run-{ctx.run_id}"),
        )

    trainer = await RAY_THREAD.run(prepare)
    started = time.perf_counter()
    try:
        result = await RAY_THREAD.run(trainer.fit)
    except Exception as exc:
        cause = _unwrap_failure(exc)
        logger.error("ray train failed: %s", exc)
        raise TrainingFailed("train_loop", cause) from exc
    took = time.perf_counter() - started
    records = read_metrics_file(summary)
    if not setup.control_url:  # nobody saw them live: replay them through the run's callbacks
        for step, values in records:
            ctx.report(values, step=step)
    metrics = clean_metrics(result.metrics or (records[-1][1] if records else {}), logger)
    metrics = {k: v for k, v in metrics.items() if not k.startswith("_")}
    checkpoint = result.checkpoint
    if checkpoint is not None:
        await asyncio.to_thread(checkpoint.to_directory, str(ctx.model_dir))
    else:
        logger.warning("train_loop reported no checkpoint: pass model_dir= to runtime_agent.train.report")
    logger.info("ray train finished in %.1f s (ray start %.1f s): %s", took, ray_seconds, metrics)
    return TrainResult(
        metrics=metrics,
        score=pick_score(metrics, ctx.model_conf),
        model_dir=ctx.model_dir,
        checkpoint_path=checkpoint.path if checkpoint is not None else None,
        num_workers=trainer.scaling_config.num_workers,
        use_gpu=bool(trainer.scaling_config.use_gpu),
        ray_start_seconds=ray_seconds,
        fit_seconds=took,
    )


def shutdown_ray() -> None:
    """Stop the Ray instance this process started (no-op if none)."""
    try:
        import ray  # deferred: see start_ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()


__all__ = [
    "TrainSetup",
    "WorkerHandle",
    "describe_exception",
    "device",
    "get_shard",
    "pick_score",
    "report",
    "roles",
    "run_training",
    "shutdown_ray",
    "start_ray",
    "world_rank",
    "world_size",
]
