"""`run_task`: one run to its end, with its side tasks, and exactly one final report.

It owns the run's heartbeats (which can ask it to stop), live metrics and signal handling, runs
`pipeline.execute`, and turns every outcome into one report: failed with a one-line reason that
names the stage and rows read (traceback in the log), stopped, or the runningAutoFinish call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import TYPE_CHECKING, Any

from connectors.errors import AtomError
from control.schemas import (
    Heartbeat,
    MetricReport,
    RunState,
    TaskSpec,
)
from runtime_agent.context import OperatorContext, logical_date_of
from runtime_agent.errors import RunStopped, describe_exception
from runtime_agent.failures import classify
from runtime_agent.logs import add_secret, redact
from runtime_agent.sources import Connections, ConnectorOpener, SinkWriter, SourceReader

if TYPE_CHECKING:
    from runtime_agent.callbacks import Callbacks
    from runtime_agent.settings import AgentSettings, RunDirs

from runtime_agent.pipeline import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STOPPED,
    Run,
    RunOutcome,
    execute,
    fetch_spec,
    heartbeat_loop,
    report_running,
    run_key,
    source_progress,
)

logger = logging.getLogger(__name__)


# -- orchestration ----------------------------------------------------------------------------


def one_line(text: str, limit: int = 1000) -> str:
    """A reason string: first line only, secrets masked, bounded."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    line = redact(lines[0] if lines else "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def failure_reason(exc: BaseException) -> str:
    """The reason reported for a failed run."""
    if isinstance(exc, AtomError):
        return one_line(str(exc))
    return one_line(f"agent error: {describe_exception(exc)}")


def stage_reason(ctx: OperatorContext, reason: str) -> str:
    """`reason` prefixed with the stage the run was in and the rows it had read, on one line."""
    stage = ctx.stage
    if stage.startswith("read ") and ctx.current_source is not None:
        stage = f"read source {ctx.current_source.source_name!r}"
    rows = f" after {ctx.rows_read:,} rows" if ctx.rows_read else ""
    return one_line(f"failed in stage {stage}{rows}: {reason}")


async def report_last_progress(run: Run) -> None:
    """One last heartbeat with the stage, rows read and per-source progress (best effort)."""
    with contextlib.suppress(Exception):
        await run.callbacks.heartbeat(
            Heartbeat(stage=run.ctx.stage[:100], rows_read=run.ctx.rows_read, sources=source_progress(run))
        )


def export_env(spec: TaskSpec, dirs: RunDirs, settings: AgentSettings) -> None:
    """Put the task's envs and the ATOM_* run paths into os.environ (inherited by Ray workers)."""
    for key, value in spec.envs.items():
        os.environ[str(key)] = str(value)
    paths = {
        "ATOM_RUN_ID": str(spec.run_id),
        "ATOM_DATA_DIR": str(dirs.data),
        "ATOM_MODEL_DIR": str(dirs.model),
        "ATOM_LOG_DIR": str(dirs.log),
        "ATOM_SUMMARY_DIR": str(dirs.summary),
        "ATOM_SHARE_DIR": str(dirs.share),
    }
    if spec.model is not None:
        paths["ATOM_MODEL_NAME"] = spec.model.model_name
        if spec.model.model_version:
            paths["ATOM_MODEL_VERSION"] = spec.model.model_version
    for key, value in paths.items():
        os.environ.setdefault(key, value)


async def run_task(
    settings: AgentSettings,
    callbacks: Callbacks,
    *,
    spec: TaskSpec | None = None,
    operator: Any = None,
    opener: ConnectorOpener | None = None,
    train_executor: str | None = None,
    keep_emitted: bool = False,
    handle_signals: bool = False,
    apply_env: bool = False,
) -> RunOutcome:
    """Run one task to its end and report it; never raises for a failed run.

    Args:
        settings: the agent's settings (dirs, heartbeat interval, control URL).
        callbacks: where reports go (control, or log lines).
        spec: the task spec; None fetches it with `callbacks.task_spec()`.
        operator: an operator class or instance to use instead of importing moduleName.
        opener: `open_connector` replacement (default: `connectors.registry.open_connector`).
        train_executor: `direct` (`local`), `ray` or `auto`; None: environmentConf `trainExecutor`,
            else `settings.train_executor`.
        keep_emitted: keep every emitted frame on the context (for tests).
        handle_signals: SIGTERM / SIGINT stop the run (the CLI sets this).
        apply_env: export the task's envs and ATOM_* paths to os.environ (the CLI sets this).

    Returns:
        The outcome; `exit_code` is what the CLI exits with.
    """
    if settings.run_token is not None:
        add_secret(settings.run_token.get_secret_value())
    try:
        spec = await fetch_spec(callbacks, spec)
    except Exception as exc:
        reason = failure_reason(exc)
        logger.error("cannot get the task spec: %s", reason, exc_info=not isinstance(exc, AtomError))
        failure = classify(exc)
        with contextlib.suppress(Exception):
            await callbacks.report_state(
                RunState.FAILED, reason, failure_class=failure.failure_class, retryable=failure.retryable
            )
        return RunOutcome(RunState.FAILED, reason, EXIT_FAILED)
    for source in spec.sources:
        add_secret(source.connection.connect_password)
    if spec.model is not None and spec.model.connection is not None:
        add_secret(spec.model.connection.connect_password)

    dirs = settings.run_dirs(spec.run_id)
    if apply_env:
        export_env(spec, dirs, settings)
    loop = asyncio.get_running_loop()
    metric_queue: asyncio.Queue[MetricReport | None] = asyncio.Queue()
    if settings.cache_dir is not None or settings.cache_max_bytes is not None:
        from connectors.cache import default_cache  # deferred: only runs with remote files need it

        default_cache(settings.cache_dir, max_bytes=settings.cache_max_bytes)
    connections = Connections(opener)
    reader = SourceReader([s for s in spec.sources if str(s.source_type) != "sink"], connections)

    def on_metrics(step: int, values: dict[str, float]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
            loop.call_soon_threadsafe(metric_queue.put_nowait, MetricReport(step=step, values=values))

    ctx = OperatorContext(
        run_id=spec.run_id,
        operator_conf=spec.operator.operator_conf,
        environment_conf=spec.operator.environment_conf,
        model_conf=spec.operator.model_conf,
        envs=spec.envs,
        run_parameter=spec.run_parameter,
        epochs=spec.operator.operator_epoch,
        model_dir=dirs.model,
        data_dir=dirs.data,
        summary_dir=dirs.summary,
        share_dir=dirs.share,
        logger=logging.getLogger(f"atom.operator.{spec.node_name}"),
        on_metrics=on_metrics,
        open_source=reader.read_role,
        open_files=reader.files,
        keep_emitted=keep_emitted,
        logical_date=logical_date_of(spec.logical_date),
    )
    run = Run(
        settings,
        spec,
        dirs,
        callbacks,
        connections,
        ctx,
        train_executor=train_executor,
        metric_queue=metric_queue,
    )
    run.reader = reader
    run.sinks = SinkWriter(
        [s for s in spec.sources if str(s.source_type) == "sink"],
        connections,
        ctx,
        settings.sink_flush_rows,
        run_key=run_key(spec),
    )

    stop_reason: list[str] = []
    stop_event = asyncio.Event()

    def request_stop(reason: str) -> None:
        if not stop_reason:
            stop_reason.append(reason)
            logger.warning("stop requested: %s", reason)
        stop_event.set()

    installed: list[signal.Signals] = []
    if handle_signals:
        for sig, why in ((signal.SIGTERM, "stopped by SIGTERM"), (signal.SIGINT, "stopped by SIGINT")):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, request_stop, why)
                installed.append(sig)

    async def send_metrics() -> None:
        while (report := await metric_queue.get()) is not None:
            try:
                await callbacks.report_metrics(report)
            except Exception as exc:  # metrics are best effort
                logger.warning("metrics not delivered: %s", describe_exception(exc))
            finally:
                metric_queue.task_done()

    logger.info(
        "run %s: node %r, operator %s:%s (%s), %d source(s)",
        spec.run_id,
        spec.node_name,
        spec.operator.module_name,
        spec.operator.execute_object,
        spec.operator.operator_runtime_type,
        len(spec.sources),
    )
    sender = asyncio.create_task(send_metrics(), name="atom-metrics")
    beats: asyncio.Task[None] | None = None
    outcome: RunOutcome
    try:
        with run.timings.stage("callbacks"):
            await report_running(run)
        beats = asyncio.create_task(
            heartbeat_loop(run, settings.heartbeat_interval, request_stop), name="atom-heartbeat"
        )
        work = asyncio.create_task(execute(run, operator), name="atom-work")
        stopper = asyncio.create_task(stop_event.wait(), name="atom-stop")
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            raise RunStopped(stop_reason[0] if stop_reason else "stopped")
        stopper.cancel()
        work.result()
        outcome = RunOutcome(RunState.SUCCEEDED, "", EXIT_OK)
        logger.info("run %s succeeded", spec.run_id)
    except RunStopped as exc:
        outcome = RunOutcome(RunState.STOPPED, one_line(str(exc)), EXIT_STOPPED)
        with contextlib.suppress(Exception):
            await callbacks.report_state(RunState.STOPPED, outcome.reason)
    except Exception as exc:
        outcome = RunOutcome(RunState.FAILED, stage_reason(ctx, failure_reason(exc)), EXIT_FAILED)
        logger.error("run %s failed: %s", spec.run_id, outcome.reason, exc_info=exc)
        await report_last_progress(run)
        failure = classify(exc, operator_conf=spec.operator.operator_conf, op=run.op)
        kind, retryable = failure.failure_class, failure.retryable
        logger.info("failure class: %s%s", kind.value, " (retries of user errors opted in)" * bool(retryable))
        try:
            await callbacks.report_state(
                RunState.FAILED, outcome.reason, failure_class=kind, retryable=retryable
            )
        except Exception as report_exc:
            logger.error("could not report the failure: %s", describe_exception(report_exc))
    finally:
        if beats is not None:
            beats.cancel()
        for sig in installed:
            loop.remove_signal_handler(sig)
        metric_queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sender, timeout=30)
        if run.sinks is not None:
            await run.sinks.abort()  # no-op after a commit; else the targets stay as they were
        await reader.aclose()
        await connections.aclose()
        if run.owns_ray:
            from runtime_agent.train import shutdown_ray  # deferred: imports Ray lazily

            with run.timings.stage("ray_disconnect"):
                await asyncio.to_thread(shutdown_ray)
        logger.info("%s", run.timings.line())
    outcome.model_address = run.model_address
    outcome.model_version = run.model_version
    outcome.train = run.train
    outcome.ctx = ctx
    return outcome
