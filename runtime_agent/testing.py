"""`AgentRunner`: run an operator class locally against in-memory DataFrames and inspect what it did.

```python
from runtime_agent.testing import AgentRunner

result = AgentRunner(MyOperator, sources={"source": train_df, "test_source": test_df},
                     operator_conf={"labelColumn": "y"}, epochs=2).run()
assert result.ok, result.reason
result.emitted          # every row the operator emitted (a DataFrame)
result.sink             # what the FILE sink holds after the run
result.metrics          # [(step, {name: value}), ...] as control would have received them
result.model_dir        # the run's model directory (model.tar.gz is stored beside it)
```

The runner writes each DataFrame to a pickle file and reads it back through the real FILE
connector, so paging (`operator_read_num`), `disposable` and hook order behave as in production.
`train_executor="local"` (the default) runs a TrainOperator's `train_loop` in-process (rank 0 of 1);
pass `"ray"` for real Ray Train.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from control.schemas import (
    ConnectionSpec,
    ConnectType,
    ModelSpec,
    OperatorRuntimeType,
    OperatorSpec,
    RunState,
    SourceRole,
    SourceSpec,
    TaskSpec,
)
from runtime_agent.callbacks import RecordingCallbacks
from runtime_agent.pipeline import RunOutcome
from runtime_agent.runner import run_task
from runtime_agent.settings import AgentSettings

if TYPE_CHECKING:
    import pandas as pd

    from control.schemas import ModelVersionReport, TaskEvent
    from control.schemas.trials import TrialReport
    from runtime_agent.api import TrainResult
    from runtime_agent.context import OperatorContext


@dataclass
class AgentResult:
    """What one `AgentRunner.run()` did.

    Attributes:
        state: succeeded, failed or stopped.
        reason: the failure / stop reason (one line).
        exit_code: what `atom-runtime run` would have exited with.
        emitted: every row the operator emitted.
        sink_path: the FILE sink the rows were written to (None without a sink).
        metrics: `(step, values)` in the order control would have received them.
        states: the state reports (`running`, then `failed` / `stopped` when it ends so).
        model_dir: the run's model directory.
        model_address: where model.tar.gz was stored (None when no model was saved).
        model_versions: the ModelVersionReports sent.
        finishes: the runningAutoFinish events sent.
        train: Ray Train's (or the local executor's) result, for train_loop operators.
        trials: the hyper-parameter search's trials as last reported, by trial id.
        ctx: the operator context.
    """

    state: RunState
    reason: str
    exit_code: int
    emitted: pd.DataFrame
    sink_path: Path | None
    metrics: list[tuple[int, dict[str, float]]]
    states: list[tuple[RunState, str]]
    model_dir: Path
    model_address: str | None
    model_versions: list[ModelVersionReport]
    finishes: list[TaskEvent]
    train: TrainResult | None
    ctx: OperatorContext | None = field(repr=False, default=None)
    trials: dict[str, TrialReport] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the run succeeded."""
        return self.state == RunState.SUCCEEDED

    @property
    def sink(self) -> pd.DataFrame | None:
        """The sink file's rows after the run (None without a sink or when nothing was written)."""
        import pandas as pd

        if self.sink_path is None or not self.sink_path.exists():
            return None
        return pd.read_pickle(self.sink_path)


class AgentRunner:
    """Runs one operator the way `atom-runtime run` would, with no control and FILE sources.

    Args:
        operator: the operator class (or instance), or a `"module:Class"` reference.
        sources: role -> a DataFrame (one data source) or a list of them (one source each).
        runtime_type: the operator's runtime type (TRAIN, REASONING, PYTHON, ...).
        operator_conf: operatorConf.
        model_conf: modelConf.
        environment_conf: environmentConf.
        epochs: operatorEpoch.
        operator_read_num: rows per batch (0: one batch per page).
        paginate_read_num: rows per page read from the file (0: the connector's default).
        disposable: hand each source to operate_execute as one DataFrame.
        hooks: data-source hook fields (`{"dataExecuteBefore": "clean"}`) set on every source.
        sink: give the task a FILE sink (a pickle file in the work dir).
        model_name: the task's model name (None: no model, so nothing is uploaded).
        model_path: a model directory to put in `ctx.model_dir` first (for reasoning operators).
        workdir: where the run's files go (default: a new temp dir).
        train_executor: `local` (train_loop in-process) or `ray` (real Ray Train).
        sink_conf: the sink's `sourceConf` (writeMode, key, runKey, idempotent).
        stop_after_heartbeats: answer stop=true to this heartbeat (tests of stopping).
        heartbeat_interval: seconds between heartbeats.
        search_conf: the operator's searchConf (a Ray Tune hyper-parameter search; {}: none).
    """

    def __init__(
        self,
        operator: Any,
        *,
        sources: Mapping[str, pd.DataFrame | Sequence[pd.DataFrame]] | None = None,
        runtime_type: str = "TRAIN",
        operator_conf: Mapping[str, Any] | None = None,
        model_conf: Mapping[str, Any] | None = None,
        environment_conf: Mapping[str, Any] | None = None,
        epochs: int = 1,
        operator_read_num: int = 0,
        paginate_read_num: int = 0,
        disposable: bool = False,
        hooks: Mapping[str, str] | None = None,
        sink: bool = True,
        sink_conf: Mapping[str, Any] | None = None,
        model_name: str | None = "model",
        model_path: Path | None = None,
        workdir: Path | None = None,
        train_executor: str = "local",
        stop_after_heartbeats: int | None = None,
        heartbeat_interval: float = 3600.0,
        search_conf: Mapping[str, Any] | None = None,
    ) -> None:
        self.operator = operator
        self.sources = dict(sources or {})
        self.runtime_type = runtime_type
        self.operator_conf = dict(operator_conf or {})
        self.model_conf = dict(model_conf or {})
        self.environment_conf = dict(environment_conf or {})
        self.epochs = epochs
        self.operator_read_num = operator_read_num
        self.paginate_read_num = paginate_read_num
        self.disposable = disposable
        self.hooks = dict(hooks or {})
        self.sink = sink
        self.sink_conf = dict(sink_conf or {})
        self.model_name = model_name
        self.model_path = model_path
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="atom-runner-"))
        self.train_executor = train_executor
        self.stop_after_heartbeats = stop_after_heartbeats
        self.heartbeat_interval = heartbeat_interval
        self.search_conf = dict(search_conf or {})

    def _reference(self) -> tuple[str, str, Any]:
        from runtime_agent.loader import split_ref

        if isinstance(self.operator, str):
            module, obj = split_ref(self.operator)
            return module, obj, None
        cls = self.operator if isinstance(self.operator, type) else type(self.operator)
        return cls.__module__, cls.__qualname__, self.operator

    def build_spec(self) -> TaskSpec:
        """The TaskSpec the run uses (writes the input DataFrames as pickle files)."""
        inputs = self.workdir / "inputs"
        inputs.mkdir(parents=True, exist_ok=True)
        conn = ConnectionSpec(
            connect_name="runner-files", connect_type=ConnectType.FILE, connect_addr=str(self.workdir)
        )
        specs: list[SourceSpec] = []
        for role, value in self.sources.items():
            frames: list[Any] = list(value) if isinstance(value, list | tuple) else [value]
            for i, df in enumerate(frames):
                path = inputs / f"{role}-{i}.pkl"
                df.to_pickle(path)
                specs.append(self._source(f"{role}-{i}", SourceRole(role), f"inputs/{path.name}", conn))
        if self.sink:
            specs.append(self._source("sink", SourceRole.SINK, "outputs/sink.pkl", conn))
        module, obj, _ = self._reference()
        model = None
        if self.model_name:
            model = ModelSpec(
                model_name=self.model_name,
                connection=ConnectionSpec(
                    connect_name="runner-models",
                    connect_type=ConnectType.FILE,
                    connect_addr=str(self.workdir / "models"),
                ),
            )
        return TaskSpec(
            run_id=1,
            node_name="runner",
            operator=OperatorSpec(
                operator_name=obj,
                operator_runtime_type=OperatorRuntimeType(self.runtime_type),
                module_name=module,
                execute_object=obj,
                operator_conf=self.operator_conf,
                environment_conf=self.environment_conf,
                model_conf=self.model_conf,
                operator_epoch=self.epochs,
                search_conf=self.search_conf,
            ),
            sources=specs,
            model=model,
        )

    def _source(self, name: str, role: SourceRole, target: str, conn: ConnectionSpec) -> SourceSpec:
        from runtime_agent.lifecycle import snake_case

        fields: dict[str, Any] = {
            "source_name": name,
            "source_type": role,
            "operate_execute": target,
            "data_format": "pickle",
            "operator_read_num": self.operator_read_num,
            "paginate_read_num": self.paginate_read_num,
            "disposable": self.disposable,
            "connection": conn,
        }
        if role != SourceRole.SINK:
            fields.update({snake_case(k): v for k, v in self.hooks.items()})
        else:
            fields["source_conf"] = self.sink_conf
        return SourceSpec.model_validate(fields)

    async def arun(self) -> AgentResult:
        """Run the operator (async form of `run`)."""
        import pandas as pd

        spec = self.build_spec()
        _, _, given = self._reference()
        settings = AgentSettings(
            control_url=None,
            run_token=None,
            data_dir=self.workdir / "data",
            model_dir=self.workdir / "model",
            log_dir=self.workdir / "logs",
            summary_dir=self.workdir / "summary",
            share_dir=self.workdir / "share",
            heartbeat_interval=self.heartbeat_interval,
        )
        if self.model_path is not None:
            import shutil

            shutil.copytree(self.model_path, self.workdir / "model", dirs_exist_ok=True)
        callbacks = RecordingCallbacks(stop_after_heartbeats=self.stop_after_heartbeats)
        outcome: RunOutcome = await run_task(
            settings,
            callbacks,
            spec=spec,
            operator=given,
            train_executor=self.train_executor,
            keep_emitted=True,
        )
        ctx = outcome.ctx
        frames = ctx.emitted_history if ctx is not None else []
        emitted = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return AgentResult(
            state=outcome.state,
            reason=outcome.reason,
            exit_code=outcome.exit_code,
            emitted=emitted,
            sink_path=self.workdir / "outputs" / "sink.pkl" if self.sink else None,
            metrics=[(m.step, dict(m.values)) for m in callbacks.metrics],
            states=list(callbacks.states),
            model_dir=self.workdir / "model",
            model_address=outcome.model_address,
            model_versions=list(callbacks.model_versions),
            finishes=list(callbacks.finishes),
            train=outcome.train,
            ctx=ctx,
            trials=dict(callbacks.trials),
        )

    def run(self) -> AgentResult:
        """Run the operator to its end (blocking; starts its own event loop)."""
        return asyncio.run(self.arun())
