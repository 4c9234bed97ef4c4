"""The steps of one run: spec -> running -> code -> load -> hooks over sources -> train -> sinks ->
model upload -> model version -> runningAutoFinish. Each step is its own function; `execute` runs
them in order and `runtime_agent.runner.run_task` runs `execute` with its side tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from control.schemas import (
    Heartbeat,
    MetricReport,
    ModelVersionReport,
    OperatorRuntimeType,
    RunState,
    SourceProgress,
    TaskEvent,
    TaskSpec,
)
from runtime_agent import models, outputs
from runtime_agent._aio import in_daemon_thread
from runtime_agent.api import ReasoningOperator, TrainOperator, TrainResult
from runtime_agent.code import fetch_code
from runtime_agent.compat import LegacyReasoningOperator, LegacyTrainOperator, adapt
from runtime_agent.context import OperatorContext
from runtime_agent.errors import SpecError, describe_exception
from runtime_agent.lifecycle import run_lifecycle
from runtime_agent.loader import instantiate, load_object
from runtime_agent.sources import Connections, SinkWriter, SourceReader
from runtime_agent.timings import StageTimings

if TYPE_CHECKING:
    from runtime_agent.callbacks import Callbacks
    from runtime_agent.settings import AgentSettings, RunDirs

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_STOPPED = 0, 1, 143


@dataclass
class RunOutcome:
    """How a run ended.

    Attributes:
        state: succeeded, failed or stopped.
        reason: the one-line reason reported for failed / stopped runs.
        exit_code: 0, 1 (failed) or 143 (stopped).
        model_address: where the model archive was stored, if one was.
        model_version: the version control assigned, if any.
        train: Ray Train's result for TRAIN operators with a train_loop.
        ctx: the run's operator context (emitted rows, metrics, model dir).
    """

    state: RunState
    reason: str = ""
    exit_code: int = EXIT_OK
    model_address: str | None = None
    model_version: str | None = None
    train: TrainResult | None = None
    ctx: OperatorContext | None = None


@dataclass
class Run:
    """The state one run's steps share."""

    settings: AgentSettings
    spec: TaskSpec
    dirs: RunDirs
    callbacks: Callbacks
    connections: Connections
    ctx: OperatorContext
    op: Any = None
    sinks: SinkWriter | None = None
    reader: SourceReader | None = None
    train: TrainResult | None = None
    model_address: str | None = None
    model_version: str | None = None
    train_executor: str | None = None
    owns_ray: bool = False
    timings: StageTimings = field(default_factory=StageTimings)
    metric_queue: asyncio.Queue[MetricReport | None] = field(default_factory=asyncio.Queue)


# -- steps ----------------------------------------------------------------------------------------


def load_spec_file(path: Path, *, run_id: int | None = None) -> TaskSpec:
    """Read a TaskSpec from YAML or JSON (camelCase keys); runId and nodeName may be left out.

    Raises:
        SpecError: the file is missing, not YAML, or not a valid TaskSpec.
    """
    import yaml  # deferred: only spec files need it
    from pydantic import ValidationError

    from control import safe_yaml

    try:
        raw = safe_yaml.load(safe_yaml.read_text(path))
    except OSError as exc:
        raise SpecError(f"spec file {path} cannot be read: {exc.strerror or exc}") from exc
    except safe_yaml.YamlTooLarge as exc:
        raise SpecError(f"spec file {path} {exc}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"spec file {path} is not valid YAML/JSON: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"spec file {path} must hold a mapping (a TaskSpec), not {type(raw).__name__}")
    if run_id is not None:
        raw["runId"] = run_id
    raw.setdefault("runId", 0)
    raw.setdefault("nodeName", path.stem)
    try:
        return TaskSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SpecError(f"spec file {path}: {where}: {first['msg']} ({exc.error_count()} error(s))") from exc


async def fetch_spec(callbacks: Callbacks, spec: TaskSpec | None) -> TaskSpec:
    """The run's TaskSpec: the one given, or fetched from control."""
    if spec is not None:
        return spec
    return await callbacks.task_spec()


async def report_running(run: Run) -> None:
    """Tell control the run is running."""
    await run.callbacks.report_state(RunState.RUNNING, f"agent pid {os.getpid()}")


def source_progress(run: Run) -> dict[str, SourceProgress] | None:
    """Rows read (and the row count, where known) per source so far, for a heartbeat."""
    return run.reader.progress() if run.reader is not None else None


async def heartbeat_loop(run: Run, interval: float, request_stop: Any) -> None:
    """Send a heartbeat every `interval` seconds; a `stop: true` answer stops the run."""
    while True:
        beat = Heartbeat(stage=run.ctx.stage[:100], rows_read=run.ctx.rows_read, sources=source_progress(run))
        try:
            stop = await run.callbacks.heartbeat(beat)
        except Exception as exc:  # heartbeats are best effort
            logger.warning("heartbeat failed: %s", describe_exception(exc))
            stop = False
        if stop:
            request_stop("stopped by user")
            return
        await asyncio.sleep(interval)


def load_operator(run: Run, given: Any = None) -> Any:
    """Import moduleName, take executeObject, build it and wrap original-runtime classes.

    Raises:
        OperatorLoadError: the module or the object is missing, or the class cannot be built.
    """
    operator = run.spec.operator
    obj = given if given is not None else load_object(operator.module_name, operator.execute_object)
    instance = instantiate(obj, module_name=operator.module_name, execute_object=operator.execute_object)
    op = adapt(instance)
    logger.info(
        "operator %s:%s loaded (%s%s)",
        operator.module_name,
        operator.execute_object,
        type(op).__name__,
        f" wrapping {type(instance).__name__}" if op is not instance else "",
    )
    return op


def is_training(run: Run) -> bool:
    """True when the operator produces a model (a TRAIN run or a train-style operator)."""
    if isinstance(run.op, TrainOperator | LegacyTrainOperator):
        return True
    return not isinstance(run.op, ReasoningOperator) and (
        run.spec.operator.operator_runtime_type == OperatorRuntimeType.TRAIN
    )


async def prepare_model(run: Run) -> None:
    """For inference operators: fetch the task's model into `ctx.model_dir` before the hooks."""
    model = run.spec.model
    if not isinstance(run.op, ReasoningOperator) or model is None or not model.model_address:
        return
    run.ctx.stage = "fetch model"
    await models.download(
        model.model_address,
        connection=model.connection,
        connections=run.connections,
        dest=run.ctx.model_dir,
        default_base=run.dirs.data / "models",
    )


async def execute_hooks(run: Run) -> None:
    """Read the input sources and run the six hooks; emitted rows are flushed to sinks as they fill."""
    reader = run.reader
    if reader is None:
        reader = SourceReader([s for s in run.spec.sources if str(s.source_type) != "sink"], run.connections)
    sinks = run.sinks
    await run_lifecycle(run.op, run.ctx, reader, after_batch=sinks.flush_if_full if sinks else None)


async def train(run: Run) -> TrainResult | None:
    """Run the operator's `train_loop` with the run's executor (direct or Ray Train), if it has one;
    an operator with a `searchConf` runs a Ray Tune search instead (`runtime_agent.tune`)."""
    if run.spec.operator.search_conf and is_training(run):
        from runtime_agent.tune import search_and_train  # Ray: lazily

        return await search_and_train(run)
    if not isinstance(run.op, TrainOperator) or not callable(type(run.op).train_loop):
        return None
    from runtime_agent.train import TrainSetup, plan_for, resolve_executor, run_training  # Ray: lazily

    env_conf = run.ctx.environment_conf
    with run.timings.stage("plan"):
        plan = await in_daemon_thread(plan_for, run.spec.service_info, env_conf)
    executor = resolve_executor(run.train_executor, env_conf, run.settings.train_executor, plan)
    run.owns_ray = executor == "ray"  # leave Ray at the end: stop a private one, else disconnect
    token = run.settings.run_token.get_secret_value() if run.settings.run_token else None
    setup = TrainSetup(
        executor=executor,
        plan=plan,
        storage_path=run.dirs.data / "ray_results",
        num_cpus=run.settings.ray_num_cpus,
        control_url=run.settings.control_url if run.callbacks.live else None,
        token=token,
        timings=run.timings,
    )
    result = await run_training(run.op, run.ctx, setup)
    run.train = result
    run.ctx.stage = "after train"
    from runtime_agent.lifecycle import call_hook

    await call_hook("after_train", run.op.after_train, run.ctx, result)
    return result


async def write_sinks(run: Run) -> None:
    """Write every row still buffered to the sink(s) and commit them (all staged rows become visible)."""
    if run.sinks is not None:
        run.ctx.stage = "write"
        await run.sinks.commit()
        if run.sinks.rows_written:
            logger.info("sinks: %d rows written", run.sinks.rows_written)


async def save_model(run: Run) -> str | None:
    """Pack `ctx.model_dir` and store it in the model's connection; returns its URI."""
    if not is_training(run):
        return None
    if not models.has_files(run.ctx.model_dir):
        logger.warning("the operator wrote no model files to %s; no model version", run.ctx.model_dir)
        return None
    model = run.spec.model
    if model is None:
        logger.info("the task has no model; the model files stay in %s", run.ctx.model_dir)
        return None
    run.ctx.stage = "save model"
    name = model.model_name or run.settings.model_name or run.spec.node_name
    run.model_address = await models.upload(
        run.ctx.model_dir,
        model_name=name,
        run_id=run.spec.run_id,
        connection=model.connection,
        connections=run.connections,
        default_base=run.dirs.data / "models",
    )
    return run.model_address


def final_metrics(run: Run) -> dict[str, float]:
    """The metrics the model version records: Ray Train's final ones, else the last reported."""
    metrics = dict(run.ctx.last_metrics)
    if run.train is not None:
        metrics.update(run.train.metrics)
    return metrics


async def register_model(run: Run) -> None:
    """Register the stored model as a new version with its score and metrics."""
    if run.model_address is None:
        return
    from runtime_agent.train import pick_score  # light: Ray is imported lazily there

    metrics = final_metrics(run)
    score = run.train.score if run.train is not None else pick_score(metrics, run.ctx.model_conf)
    # control stores finite numbers only (a diverged run's NaN loss is left out, its score is 0)
    metrics = {name: value for name, value in metrics.items() if math.isfinite(value)}
    score = score if math.isfinite(score) else 0.0
    assigned = await run.callbacks.register_model_version(
        ModelVersionReport(
            model_address=run.model_address,
            model_score=score,
            metrics=metrics,
            serving_object=serving_object(run),
        )
    )
    if assigned is not None:
        run.model_version = assigned.model_version


def serving_object(run: Run) -> str | None:
    """`module:Class` that serves this operator's model, if the operator or modelConf names one."""
    named = run.spec.operator.model_conf.get("servingObject") or getattr(run.op, "serving_object", None)
    return str(named) if named else None


def run_key(spec: TaskSpec) -> str:
    """The identity sinks key their rows by: `runParameter.runKey`, else node name and run id.

    An agent restarted for the same run (a Kubernetes Job retrying its pod, a resumed run) gets
    the same key, so its sink rows replace the earlier attempt's instead of doubling them.
    """
    return spec.run_parameter.get("runKey") or f"{spec.node_name}#{spec.run_id}"


async def finish(run: Run) -> None:
    """Call runningAutoFinish: control records success and deploys by deployType."""
    event = TaskEvent(
        task_id=run.spec.node_id or run.spec.run_id,
        operator_runtime_type=run.spec.operator.operator_runtime_type,
        run_parameter={"runId": str(run.spec.run_id)},
    )
    await run.callbacks.running_auto_finish(event)


async def execute(run: Run, operator: Any = None) -> None:
    """Every step after `running`, in order."""
    run.ctx.stage = "load"
    outputs.attach(run)
    if run.reader is not None:
        await run.reader.prefetch()  # large files download while the operator loads
    with run.timings.stage("code_fetch"):
        await fetch_code(run.spec, run.settings, run.dirs)  # codeMode GIT / PIP / BUNDLE: onto sys.path first
    with run.timings.stage("load"):
        run.op = load_operator(run, operator)
    if isinstance(run.op, LegacyReasoningOperator):
        run.op.configure(run.ctx.operator_conf, run.ctx.model_conf)
    await prepare_model(run)
    with run.timings.stage("read"):
        await execute_hooks(run)
    await train(run)
    with run.timings.stage("sink_write"):
        await write_sinks(run)
    with run.timings.stage("model_upload"):
        await save_model(run)
    with run.timings.stage("callbacks"):
        await run.metric_queue.join()  # live metrics reach control before the version and the finish
        await register_model(run)
        await outputs.report_outputs(run)  # sink datasets and declared files, before the finish records them
    run.ctx.stage = "finish"
    with contextlib.suppress(Exception):  # the last counts (rows read, stage) before the run ends
        await run.callbacks.heartbeat(
            Heartbeat(stage="finish", rows_read=run.ctx.rows_read, progress=1.0, sources=source_progress(run))
        )
    with run.timings.stage("callbacks"):
        await finish(run)
