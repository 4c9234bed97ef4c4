"""The `ray` executor: Ray Train's TorchTrainer with one worker per planned worker.

The agent connects to the cluster at RAY_ADDRESS (control's shared head, or the cluster a Ray job
runs in) and only disconnects afterwards; with RAY_ADDRESS unset (`atom-runtime run --spec` with
no control) it starts a private local Ray and stops it at the end of the run. Workers get the
agent's PYTHONPATH (operator code delivered to this host) and its non-secret `ATOM_*` env through
the job's runtime_env. A request the cluster can never hold fails before `fit()` with one line
naming the shortfall, instead of waiting forever for resources.

Data reaches workers through Ray's object store: each role's collected DataFrame is `ray.put`
once and `get_shard(role)` in a worker fetches it. Rank 0 appends every `report` to
`metrics.jsonl` and, when the run has control, POSTs it live as a MetricReport.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime_agent._aio import DedicatedThread
from runtime_agent.api import TrainResult
from runtime_agent.context import clean_metrics
from runtime_agent.errors import SpecError, TrainingFailed
from runtime_agent.train_worker import HANDLE_KEY, WorkerHandle, ray_entry

if TYPE_CHECKING:
    from collections.abc import Callable

    from control.schemas.resources import WorkerPlan
    from runtime_agent.context import OperatorContext
    from runtime_agent.train import TrainSetup

logger = logging.getLogger("runtime_agent.train")

RAY_THREAD = DedicatedThread("atom-ray")
"""Connects to (or starts) Ray and runs `fit()`: Ray's processes must outlive the thread that
started them."""
CLEANER_LOGGER = "ray.train.v2._internal.execution.controller.placement_group_cleaner"
STATE_API_WARNING = "Failed to query Ray Train Controller actor state"
SECRET_MARKERS = ("TOKEN", "PASSWORD", "SECRET")


def ray_env_defaults() -> None:
    """Environment Ray should see unless the user set it: no auth token, plain log prefixes."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def worker_env(envs: Mapping[str, str] | None = None) -> dict[str, str]:
    """The env Ray Train workers (and the Train controller) get through the job's runtime_env.

    The agent's `ATOM_*` variables except secrets (tokens travel in the worker handle), the task's
    envs, PYTHONPATH when set (code delivered to this host), and the agent's `RAY_TRAIN_*` knobs.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key.startswith(("ATOM_", "RAY_TRAIN_")) and not any(marker in key for marker in SECRET_MARKERS)
    }
    env.update({str(k): str(v) for k, v in (envs or {}).items()})
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


class StateApiUnavailable(logging.Filter):
    """Drops the placement-group cleaner's "Failed to query Ray Train Controller actor state" line.

    Ray Train's cleaner actor asks the State API (served by the dashboard) every second whether
    the Train controller still lives. A private Ray started without a dashboard has no State
    API, so each check warns; that Ray ends with the run, placement groups included.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(STATE_API_WARNING)


def quiet_placement_group_cleaner() -> None:
    """A private Ray's `worker_process_setup_hook`: `StateApiUnavailable` on the cleaner's logger."""
    cleaner = logging.getLogger(CLEANER_LOGGER)
    if not any(isinstance(f, StateApiUnavailable) for f in cleaner.filters):
        cleaner.addFilter(StateApiUnavailable())


@dataclass(frozen=True)
class RayConnection:
    """How this process reached Ray.

    Attributes:
        address: RAY_ADDRESS as given, or the private instance's GCS address.
        started: True when this process started a private Ray (it stops it at the end).
        seconds: what `ray.init` took.
    """

    address: str
    started: bool
    seconds: float


def connect_ray(num_cpus: int | None = None, env: Mapping[str, str] | None = None) -> RayConnection:
    """Connect to the cluster at RAY_ADDRESS, or start a private local Ray when it is unset.

    Args:
        num_cpus: CPUs of a private Ray (None: all); ignored when connecting.
        env: env vars for the job's workers (`worker_env()`).
    """
    import ray  # deferred: Ray costs seconds to import; only the ray executor needs it

    if ray.is_initialized():
        return RayConnection(ray.get_runtime_context().gcs_address, False, 0.0)
    ray_env_defaults()
    runtime_env: dict[str, Any] = {"env_vars": dict(env or {})}
    address = os.environ.get("RAY_ADDRESS")
    started = time.perf_counter()
    if address:
        logger.info("ray: connecting to the cluster at %s", address)
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
    else:
        from runtime_agent.train import local_gpus  # deferred: train imports this module lazily

        gpus = local_gpus()
        logger.info("ray: starting a private local instance (cpus=%s, gpus=%d)", num_cpus or "all", gpus)
        runtime_env["worker_process_setup_hook"] = f"{__name__}.quiet_placement_group_cleaner"
        ray.init(
            address="local",
            num_cpus=num_cpus,
            num_gpus=gpus,
            include_dashboard=False,
            runtime_env=runtime_env,
            log_to_driver=True,
        )
    took = time.perf_counter() - started
    gcs = ray.get_runtime_context().gcs_address
    logger.info("ray: ready in %.1f s at %s (%s)", took, gcs, ray.cluster_resources())
    return RayConnection(address or gcs, not address, took)


def _amount(value: float) -> str:
    return f"{value:g}"


def check_capacity(plan: WorkerPlan, address: str) -> None:
    """Fail when the cluster can never hold the plan's workers (it would wait forever).

    Raises:
        SpecError: `needs 4 GPU for 4 workers; the Ray cluster at ADDR has 0 GPU` (or per node).
    """
    import ray  # deferred: see connect_ray

    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    per_worker = plan.resources_per_worker()
    mib = 1024.0 * 1024.0
    workers = f"{plan.workers} worker{'s' if plan.workers != 1 else ''}"
    for key, unit, scale in (("GPU", "GPU", 1.0), ("CPU", "CPU", 1.0), ("memory", "MiB memory", mib)):
        need = float(per_worker.get(key, 0.0))
        if need <= 0:
            continue
        total = sum(float(r.get(key, 0.0)) for r in nodes)
        largest = max((float(r.get(key, 0.0)) for r in nodes), default=0.0)
        if need * plan.workers > total + 1e-9:
            raise SpecError(
                f"needs {_amount(need * plan.workers / scale)} {unit} for {workers}; "
                f"the Ray cluster at {address} has {_amount(total / scale)} {unit}"
            )
        if need > largest + 1e-9:
            raise SpecError(
                f"needs {_amount(need / scale)} {unit} per worker; the largest node of the Ray cluster "
                f"at {address} has {_amount(largest / scale)} {unit}"
            )


def torch_backend(plan: WorkerPlan) -> str:
    """The collective backend: NCCL between GPU workers, Gloo on CPU."""
    return "nccl" if plan.use_gpu else "gloo"


def scaling_config(plan: WorkerPlan) -> Any:
    """Ray Train's ScalingConfig for the plan (one worker per requested GPU, or per node on CPU)."""
    from ray.train import ScalingConfig  # deferred: see connect_ray

    return ScalingConfig(
        num_workers=plan.workers, use_gpu=plan.use_gpu, resources_per_worker=plan.resources_per_worker()
    )


def _unwrap_failure(exc: BaseException) -> BaseException:
    """The user's exception inside a Ray Train failure (first failing rank), if it can be found."""
    failures = getattr(exc, "worker_failures", None)
    if failures:
        exc = failures[sorted(failures)[0]]
    exc = getattr(exc, "controller_failure", None) or exc
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


async def run_ray(
    train_loop: Callable[[dict[str, Any]], Any],
    config: dict[str, Any],
    frames: dict[str, Any],
    ctx: OperatorContext,
    setup: TrainSetup,
    summary: Path,
) -> TrainResult:
    """Fit `train_loop` with TorchTrainer on the plan's workers; returns the final metrics and checkpoint.

    Raises:
        SpecError: the cluster can never hold the plan.
        TrainingFailed: `train_loop` raised in a worker.
    """
    from runtime_agent.train import (
        TIMING_FILE,
        pick_score,
        plan_for,
        read_loop_times,
        read_metrics_file,
        undelivered_steps,
    )

    timings = setup.timings
    plan = setup.plan or plan_for(None, ctx.environment_conf)
    began = time.perf_counter()
    await RAY_THREAD.run(importlib.import_module, "ray")
    timings.add("ray_import", time.perf_counter() - began)
    connection = await RAY_THREAD.run(connect_ray, setup.num_cpus, worker_env(ctx.envs))
    timings.add("ray_connect", connection.seconds)
    await RAY_THREAD.run(check_capacity, plan, connection.address)
    storage = Path(str(ctx.environment_conf.get("storagePath") or setup.storage_path))
    timing_file = storage / f"run-{ctx.run_id}" / TIMING_FILE
    timing_file.parent.mkdir(parents=True, exist_ok=True)
    timing_file.unlink(missing_ok=True)

    def prepare() -> Any:
        import ray  # deferred: see connect_ray
        from ray.train import RunConfig
        from ray.train.torch import TorchConfig, TorchTrainer

        refs = {role: ray.put(df) for role, df in frames.items()}
        handle = WorkerHandle(
            frames=refs,
            run_id=ctx.run_id,
            control_url=setup.control_url,
            token=setup.token,
            summary_file=str(summary),
            timing_file=str(timing_file),
        )
        config[HANDLE_KEY] = ray.put(handle)
        logger.info(
            "ray train: %d worker(s), %s, %s",
            plan.workers,
            "GPU" if plan.use_gpu else "CPU",
            ", ".join(f"{role}={len(df)} rows" for role, df in frames.items()) or "no data",
        )
        return TorchTrainer(
            train_loop_per_worker=functools.partial(ray_entry, train_loop),
            train_loop_config=config,
            torch_config=TorchConfig(backend=torch_backend(plan)),
            scaling_config=scaling_config(plan),
            run_config=RunConfig(storage_path=str(storage), name=f"run-{ctx.run_id}"),
        )

    trainer = await RAY_THREAD.run(prepare)
    fit_began = time.time()
    started = time.perf_counter()
    try:
        result = await RAY_THREAD.run(trainer.fit)
    except Exception as exc:
        cause = _unwrap_failure(exc)
        logger.error("ray train failed: %s", exc)
        raise TrainingFailed("train_loop", cause) from exc
    took = time.perf_counter() - started
    loop = read_loop_times(timing_file)
    if loop is not None:
        timings.add("train_start", loop[0] - fit_began)
        timings.add("train", loop[1] - loop[0])
        timings.add("train_stop", fit_began + took - loop[1])
    else:
        timings.add("train", took)
    records = read_metrics_file(summary)
    missed = undelivered_steps(summary)
    for step, values in records:  # what control did not see live goes through the agent's retrying path
        if not setup.control_url or step in missed:
            ctx.report(values, step=step)
    metrics = clean_metrics(result.metrics or (records[-1][1] if records else {}), logger)
    metrics = {k: v for k, v in metrics.items() if not k.startswith("_")}
    checkpoint = result.checkpoint
    if checkpoint is not None:
        await RAY_THREAD.run(checkpoint.to_directory, str(ctx.model_dir))
    else:
        logger.warning("train_loop reported no checkpoint: pass model_dir= to runtime_agent.train.report")
    logger.info("ray train finished in %.1f s (ray ready in %.1f s): %s", took, connection.seconds, metrics)
    return TrainResult(
        metrics=metrics,
        score=pick_score(metrics, ctx.model_conf),
        model_dir=ctx.model_dir,
        checkpoint_path=checkpoint.path if checkpoint is not None else None,
        num_workers=plan.workers,
        use_gpu=plan.use_gpu,
        ray_start_seconds=connection.seconds,
        fit_seconds=took,
    )


def shutdown_ray() -> None:
    """Leave Ray: `ray.shutdown()` stops a private instance and only disconnects from a cluster."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


__all__ = [
    "RayConnection",
    "StateApiUnavailable",
    "check_capacity",
    "connect_ray",
    "quiet_placement_group_cleaner",
    "run_ray",
    "scaling_config",
    "shutdown_ray",
    "torch_backend",
    "worker_env",
]
