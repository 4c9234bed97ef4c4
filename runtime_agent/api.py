"""The operator API (DESIGN §4): base classes users subclass, and the hook names the agent calls.

An operator is a class named by executeObject in moduleName. Every hook is optional and may be
sync (run in a worker thread, so heartbeats keep flowing) or `async def`. The agent calls, in order:

1. `task_init_execute(ctx)` once per task;
2. for each data source read (roles `source`, `test_source`, `init_data`, sorted by `order`):
   `operate_execute_before(ctx, source)`, then per batch `data_execute_before(batch, ctx)`,
   `operate_execute(batch, ctx)`, `data_execute_after(batch, ctx)`, then `operate_execute_after(ctx)`
   (a `disposable` source is one batch holding the whole dataset);
3. `task_finish_execute(ctx)` once, after the last source;
4. TRAIN operators with a `train_loop`: Ray Train runs it on every worker, then `after_train(ctx, result)`.

CamelCase method names (`taskInitExecute`) work too, and a data source's hook field
(`dataExecuteBefore: "clean"`) may name another method of the operator to use for that source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from runtime_agent._aio import call

if TYPE_CHECKING:
    import pandas as pd

    from control.schemas import SourceSpec
    from runtime_agent.context import OperatorContext

#: the lifecycle hooks in call order (snake_case method name -> seed camelCase name)
HOOKS: dict[str, str] = {
    "task_init_execute": "taskInitExecute",
    "operate_execute_before": "operateExecuteBefore",
    "data_execute_before": "dataExecuteBefore",
    "operate_execute": "operateExecute",
    "data_execute_after": "dataExecuteAfter",
    "operate_execute_after": "operateExecuteAfter",
}
READ_ROLES: tuple[str, ...] = ("source", "test_source", "init_data")


class Operator:
    """Base class for operators. Subclass it and override the hooks you need.

    Attributes:
        read_roles: the source roles the agent reads and feeds through the hooks.
        serving_object: `module:Class` of the reasoning operator that serves this operator's
            model (reported to control on finish).
    """

    read_roles: ClassVar[tuple[str, ...]] = READ_ROLES
    serving_object: ClassVar[str | None] = None

    def task_init_execute(self, ctx: OperatorContext) -> Any:
        """Once per task, before any data is read."""

    def operate_execute_before(self, ctx: OperatorContext, source: SourceSpec) -> Any:
        """Before the first batch of `source` (`ctx.current_source` is set too)."""

    def data_execute_before(self, batch: pd.DataFrame, ctx: OperatorContext) -> pd.DataFrame | None:
        """Per batch, before `operate_execute`.

        Returns:
            A DataFrame to use instead of `batch` (an empty one skips the batch), or None to keep it.
        """
        return None

    def operate_execute(self, batch: pd.DataFrame, ctx: OperatorContext) -> Any:
        """The work: per batch, or once with the whole dataset for a `disposable` source."""

    def data_execute_after(self, batch: pd.DataFrame, ctx: OperatorContext) -> Any:
        """Per batch, after `operate_execute`."""

    def operate_execute_after(self, ctx: OperatorContext) -> Any:
        """After the last batch of the current source."""

    def task_finish_execute(self, ctx: OperatorContext) -> Any:
        """Once per task, after the last source (before Ray training, for TRAIN operators)."""


@dataclass
class TrainResult:
    """What Ray Train produced, handed to `TrainOperator.after_train`.

    Attributes:
        metrics: the final reported metrics (of the last checkpointed report).
        score: the model's score: `metrics[modelConf.scoreMetric or "score"]`, else `accuracy`, else 0.
        model_dir: the run's model directory, holding the final checkpoint's files.
        checkpoint_path: where Ray stored that checkpoint (None if no report carried one).
        num_workers: Ray Train workers used.
        use_gpu: whether they had a GPU each.
        ray_start_seconds: time to start (or connect to) Ray.
        fit_seconds: time spent in `TorchTrainer.fit()`.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    score: float = 0.0
    model_dir: Path = field(default_factory=Path)
    checkpoint_path: str | None = None
    num_workers: int = 1
    use_gpu: bool = False
    ray_start_seconds: float = 0.0
    fit_seconds: float = 0.0


class TrainOperator(Operator):
    """A TRAIN operator whose `train_loop` the agent runs under Ray Train (TorchTrainer).

    Define `train_loop` as a `@staticmethod` taking the config dict: `{**operatorConf,
    "epochs": operatorEpoch, "modelConf": modelConf, "runId": run_id, **train_config(ctx)}`.
    Inside it use `runtime_agent.train.get_shard(role)` for this worker's rows and
    `runtime_agent.train.report(metrics, model_dir=...)` for metrics and checkpoints.
    The default `operate_execute` keeps every batch per role for those shards.
    """

    train_loop: ClassVar[Any] = None

    def operate_execute(self, batch: pd.DataFrame, ctx: OperatorContext) -> Any:
        """Collect the batch under its role (`ctx.frames(role)`) for the training workers."""
        ctx.collect(batch)

    def train_config(self, ctx: OperatorContext) -> dict[str, Any]:
        """Extra entries for the `train_loop` config (must pickle); default none."""
        return {}

    def after_train(self, ctx: OperatorContext, result: TrainResult) -> Any:
        """In the agent, after training: `ctx.model_dir` holds the final checkpoint (evaluate, emit)."""


class ReasoningOperator(Operator):
    """An inference operator: `load(model_dir)` once, then `predict(df) -> df` per request or batch.

    In a task run it loads `ctx.model_dir` in `task_init_execute` and emits `predict(batch)` per
    batch; `atom-runtime serve` calls `load` once and `predict` per V2 infer request.
    """

    def load(self, model_dir: Path) -> Any:
        """Load the model files from `model_dir` (the unpacked model.tar.gz)."""

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        """Predictions for the rows of `df` (one output row per input row)."""
        raise NotImplementedError(f"{type(self).__name__} must define predict(df)")

    def signature(self) -> dict[str, list[dict[str, Any]]] | None:
        """V2 model metadata after `load`: `{"inputs": [...], "outputs": [...]}` tensors, or None."""
        return None

    async def task_init_execute(self, ctx: OperatorContext) -> Any:
        """Load the model from `ctx.model_dir`."""
        return await call(self.load, ctx.model_dir)

    async def operate_execute(self, batch: pd.DataFrame, ctx: OperatorContext) -> Any:
        """Emit the predictions for `batch` to the sink(s)."""
        ctx.emit(await call(self.predict, batch))
