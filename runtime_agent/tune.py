"""Hyper-parameter search: a TRAIN operator's `train_loop` run as Ray Tune trials (operator `searchConf`).

When the task's operator has a `searchConf`, the run's train step runs a search instead of one
training, on the Ray the run already uses (RAY_ADDRESS, else a private local Ray):

- each trial calls the operator's `train_loop` once, as rank 0 of 1, with its sampled parameters
  merged into the config (`{**operatorConf, ..., **params}`: the loop reads them as it reads any
  operatorConf key, the way seed 001's `--lr=...` arguments reached the user's code);
- the loop's existing `runtime_agent.train.report(metrics, model_dir=...)` calls become
  `ray.tune.report` (intermediate results, with the checkpoint when a model_dir is given); the last
  one is the trial's final result, and its model is the trial's last checkpoint;
- `num_samples` = trials (the grid algorithm runs its grid once), at most `concurrency`
  trials at once, ASHA (`grace_period`) stops lagging trials when `scheduler` is `asha`;
- trials go to control as they progress (`POST /api/v1/runs/{id}/trials`); afterwards the best
  trial (by metric and mode, among those that finished) is marked, its checkpoint becomes the run's
  model directory, its reports become the run's metrics, and its parameters are merged into
  `ctx.operator_conf` (numeric ones also go into the model version's metrics as `param.<name>`).
  The version's score is picked as for one training (modelConf.scoreMetric, `score`, `accuracy`),
  else it is the search metric's final value.

A trial stopped by ASHA is `stopped`, one that raised is `failed`; the search fails only when no
trial finished. Trials store their checkpoints under the run's data dir (environmentConf
`storagePath` overrides it; a multi-node cluster needs storage every node can reach).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from control.schemas.pipeline import SearchConf
from control.schemas.trials import TrialState
from runtime_agent._aio import cancel_and_wait
from runtime_agent.api import TrainOperator, TrainResult
from runtime_agent.errors import SpecError, TrainingFailed
from runtime_agent.train_worker import TrainWorker, WorkerHandle, installed
from runtime_agent.tune_space import grid_size, plain, to_tune
from runtime_agent.tune_trials import TrialBook, error_line, pick_best

if TYPE_CHECKING:
    from collections.abc import Callable

    from runtime_agent.pipeline import Run

logger = logging.getLogger("runtime_agent.tune")

ASHA_MAX_T = 1_000_000
"""ASHA's max_t: far beyond any run, so only its rungs (not a cap) stop trials."""
PUSH_INTERVAL_S = 1.0


def search_conf_of(raw: dict[str, Any]) -> SearchConf:
    """The operator's searchConf as a `SearchConf`.

    Raises:
        SpecError: one line naming the first bad field (`searchConf.space.lr._value: ...`).
    """
    try:
        return SearchConf.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in ("searchConf", *first["loc"]))
        raise SpecError(f"{where}: {first['msg']}") from exc


# -- the trial (runs in a Ray worker) -------------------------------------------------------------


def trial_entry(
    config: dict[str, Any],
    *,
    train_loop: Callable[[dict[str, Any]], Any],
    base_config: dict[str, Any],
    frames: dict[str, Any],
    use_gpu: bool = False,
) -> None:
    """One trial: the operator's `train_loop` with the trial's parameters; reports go to Tune."""
    from ray import tune

    params = plain(dict(config))
    handle = WorkerHandle(frames=frames, run_id=int(base_config.get("runId") or 0))

    def on_report(values: dict[str, float], model_dir: str | None) -> None:
        checkpoint = tune.Checkpoint.from_directory(model_dir) if model_dir is not None else None
        tune.report(dict(values), checkpoint=checkpoint)

    worker = TrainWorker(handle, rank=0, world=1, on_report=on_report, use_gpu=use_gpu)
    with installed(worker):
        train_loop({**base_config, **params})


# -- the driver's view of the trials ----------------------------------------------------------
def tune_callback(book: TrialBook) -> Any:
    """A `ray.tune.Callback` feeding `book`."""
    from ray import tune

    class BookCallback(tune.Callback):
        def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            book.started(trial.trial_id, dict(trial.config))

        def on_trial_result(
            self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
        ) -> None:
            book.result(trial.trial_id, result)

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            book.ended(trial.trial_id, TrialState.SUCCEEDED)

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            error = trial.get_error()
            book.ended(trial.trial_id, TrialState.FAILED, error_line(error) if error is not None else "")

    return BookCallback()


def asha(book: TrialBook, grace_period: int) -> Any:
    """ASHA that records the trials it stops (they end `stopped`, not `succeeded`)."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class RecordingASHA(ASHAScheduler):
        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
            decision: str = super().on_trial_result(tune_controller, trial, result)
            if decision == TrialScheduler.STOP:
                book.stopped_early.add(trial.trial_id)
            return decision

    return RecordingASHA(max_t=ASHA_MAX_T, grace_period=grace_period, reduction_factor=2)


# -- the search -----------------------------------------------------------------------------------


async def push_trials(run: Run, book: TrialBook, wake: asyncio.Event) -> None:
    """Send changed trials to control as they change (at most one report per PUSH_INTERVAL_S)."""
    while True:
        await wake.wait()
        wake.clear()
        changed = book.take_changed()
        if changed:
            try:
                await run.callbacks.report_trials(changed)
            except Exception as exc:  # live trials are best effort; the final report is retried
                logger.warning("trials not delivered yet: %s", exc)
        await asyncio.sleep(PUSH_INTERVAL_S)


async def search_and_train(run: Run) -> TrainResult:
    """Run the operator's search, leave the best trial's model in `ctx.model_dir`, call after_train.

    Raises:
        SpecError: a bad searchConf, or an operator without a `train_loop`.
        TrainingFailed: no trial finished.
    """
    from ray import tune

    from runtime_agent.lifecycle import call_hook
    from runtime_agent.train import pick_score, plan_for, train_config
    from runtime_agent.train_ray import RAY_THREAD, connect_ray, worker_env

    ctx, op = run.ctx, run.op
    if not isinstance(op, TrainOperator) or not callable(type(op).train_loop):
        raise SpecError(
            "searchConf: a hyper-parameter search runs the operator's train_loop; "
            f"{type(op).__name__} has none (subclass runtime_agent.api.TrainOperator)"
        )
    conf = search_conf_of(run.spec.operator.search_conf)
    space = to_tune(conf.space, algorithm=conf.algorithm, seed=conf.seed)
    samples = conf.trials
    if conf.algorithm == "grid":
        points = grid_size(conf.space)
        if points > conf.trials:
            raise SpecError(
                f"searchConf.trials: the grid has {points} points, more than trials={conf.trials}"
            )
        samples = 1
    plan = plan_for(run.spec.service_info, ctx.environment_conf)
    resources = {"cpu": max(plan.cpus_per_worker, 1.0), "gpu": plan.gpus_per_worker if plan.use_gpu else 0}
    frames = {role: ctx.frame(role) for role in ctx.collected_roles}
    base_config = train_config(op, ctx)
    ctx.stage = "search"
    connection = await RAY_THREAD.run(connect_ray, run.settings.ray_num_cpus, worker_env(ctx.envs))
    run.owns_ray = True  # the runner leaves Ray at the end of the run
    run.timings.add("ray_connect", connection.seconds)
    storage = Path(str(ctx.environment_conf.get("storagePath") or run.dirs.data / "ray_results"))
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def notify() -> None:
        loop.call_soon_threadsafe(wake.set)

    book = TrialBook(conf.metric, notify=notify)

    def prepare() -> Any:
        from ray.tune.search.basic_variant import BasicVariantGenerator

        trainable = tune.with_parameters(
            trial_entry, train_loop=type(op).train_loop, base_config=base_config, frames=frames,
            use_gpu=plan.use_gpu,
        )  # fmt: skip
        return tune.Tuner(
            tune.with_resources(trainable, resources),
            param_space=space,
            tune_config=tune.TuneConfig(
                metric=conf.metric,
                mode=conf.mode,
                num_samples=samples,
                reuse_actors=True,  # a trial process runs the next trial: no process start per trial
                scheduler=asha(book, conf.grace_period) if conf.scheduler == "asha" else None,
                search_alg=BasicVariantGenerator(random_state=conf.seed, max_concurrent=conf.concurrency),
            ),
            run_config=tune.RunConfig(
                storage_path=str(storage),
                name=f"search-{ctx.run_id}",
                callbacks=[tune_callback(book)],
                verbose=0,
            ),
        )

    tuner = await RAY_THREAD.run(prepare)
    logger.info(
        "search: %s trials (%s), %d at a time, %s, optimizing %s (%s)",
        conf.trials if conf.algorithm == "random" else grid_size(conf.space),
        conf.algorithm,
        conf.concurrency,
        f"ASHA grace period {conf.grace_period}" if conf.scheduler == "asha" else "no early stopping",
        conf.metric,
        conf.mode,
    )
    pusher = asyncio.create_task(push_trials(run, book, wake))
    with run.timings.stage("search"):
        try:
            grid = await RAY_THREAD.run(tuner.fit)
        except Exception as exc:
            raise TrainingFailed("search", exc) from exc
        finally:
            await cancel_and_wait(pusher)
    checkpoints: dict[str, Any] = {}
    for result in grid:
        trial_id = str((result.metrics or {}).get("trial_id") or "")
        if trial_id and result.checkpoint is not None:
            checkpoints[trial_id] = result.checkpoint
        if trial_id and result.error is not None and trial_id in book.records:
            book.records[trial_id].state = TrialState.FAILED
            book.records[trial_id].error = error_line(result.error)
    records = list(book.records.values())
    best = pick_best(records, conf.mode)
    if best is not None:
        best.best = True
    with contextlib.suppress(Exception):
        await run.callbacks.report_trials(book.all())
    if best is None:
        errors = [r.error for r in records if r.error]
        raise TrainingFailed(
            "search",
            f"no trial of {len(records)} finished" + (f"; first error: {errors[0]}" if errors else ""),
        )
    counts = {state.value: sum(1 for r in records if r.state is state) for state in TrialState}
    logger.info(
        "search done: %s; best trial %s %s=%s params %s",
        counts,
        best.trial_id,
        conf.metric,
        best.score,
        best.params,
    )
    checkpoint = checkpoints.get(best.trial_id)
    if checkpoint is not None:
        ctx.model_dir.mkdir(parents=True, exist_ok=True)
        await RAY_THREAD.run(checkpoint.to_directory, str(ctx.model_dir))
    else:
        logger.warning("the best trial reported no checkpoint: pass model_dir= to runtime_agent.train.report")
    for step, values in best.reports:
        ctx.report(values, step=step)
    ctx.operator_conf.update(best.params)
    metrics = dict(best.metrics)
    numeric = {k: v for k, v in best.params.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    metrics.update({f"param.{k}": float(v) for k, v in numeric.items()})
    named = {str(ctx.model_conf.get("scoreMetric") or "score"), "accuracy"} & set(metrics)
    score = pick_score(metrics, ctx.model_conf) if named else float(best.score or 0.0)
    result = TrainResult(
        metrics=metrics,
        score=score,
        model_dir=ctx.model_dir,
        checkpoint_path=checkpoint.path if checkpoint is not None else None,
        num_workers=1,
        use_gpu=plan.use_gpu,
        ray_start_seconds=connection.seconds,
    )
    run.train = result
    ctx.stage = "after train"
    await call_hook("after_train", op.after_train, ctx, result)
    return result


__all__ = ["search_and_train", "search_conf_of", "trial_entry", "tune_callback"]
