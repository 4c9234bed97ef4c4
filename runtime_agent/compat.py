"""Compatibility layer for operators written for the original Atom runtime (change only the import).

Original operators subclass `TrainOperatorApi` or `ReasoningOperatorApi`:

```python
from runtime_agent.compat import TrainOperatorApi     # was: the original runtime's api module

class MyTrain(TrainOperatorApi):
    def initialization(self): ...          # self.labels, self.operators_config, self.model_config,
    def execute(self, data): ...           #   self.init_data are set; data: one DataFrame batch
    def comparision_execute(self, data):   # per batch of the test_source (the original spelling)
    def result(self) -> bytes: ...         # the model, saved as model.bin in the model directory
```

The agent wraps them in `LegacyTrainOperator` / `LegacyReasoningOperator`, which are plain
operators of the new API, and runs them in the agent process (not under Ray Train).
`execute` / `comparision_execute` may return a DataFrame (emitted to the sink) or a dict of
metrics (reported). A numeric `score` (or `model_score`) attribute after `result()` becomes the
model version's score. `labels` is the label column list: operatorConf `labels` (list or
comma-separated), else `[labelColumn]`, else `["label"]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from runtime_agent._aio import call
from runtime_agent.api import Operator, ReasoningOperator
from runtime_agent.errors import OperatorFailed

if TYPE_CHECKING:
    import pandas as pd

    from runtime_agent.context import OperatorContext

MODEL_FILE = "model.bin"


class TrainOperatorApi:
    """Base of original-runtime training operators. Override the methods below."""

    labels: list[str]
    operators_config: dict[str, Any]
    model_config: dict[str, Any]
    init_data: pd.DataFrame | None = None

    def initialization(self) -> None:
        """Called once, after `labels`, `operators_config`, `model_config`, `init_data` are set."""

    def execute(self, data: pd.DataFrame) -> Any:
        """Called per batch of the `source` role."""

    def comparision_execute(self, data: pd.DataFrame) -> Any:
        """Called per batch of the `test_source` role (the original API's spelling)."""

    def result(self) -> bytes | None:
        """The trained model's bytes (saved as model.bin), or None."""
        return None


class ReasoningOperatorApi:
    """Base of original-runtime inference operators.

    Before `initialization()` the agent sets `model` (the model.bin bytes, or None),
    `model_path` (that file's path as a string), `model_dir`, `operators_config`, `model_config`.
    """

    model: bytes | None = None
    model_path: str = ""
    model_dir: str = ""
    operators_config: dict[str, Any]
    model_config: dict[str, Any]
    labels: list[str]

    def initialization(self) -> None:
        """Load the model (from `self.model` or `self.model_path`)."""

    def predict(self, data: pd.DataFrame) -> Any:
        """Predictions for `data`: a DataFrame, Series, array, list or dict of columns."""
        raise NotImplementedError(f"{type(self).__name__} must define predict(data)")


def label_columns(conf: Mapping[str, Any]) -> list[str]:
    """The legacy `labels` list from an operatorConf."""
    labels = conf.get("labels")
    if isinstance(labels, str):
        return [part.strip() for part in labels.split(",") if part.strip()]
    if isinstance(labels, list | tuple):
        return [str(label) for label in labels]
    return [str(conf.get("labelColumn", "label"))]


def as_frame(out: Any) -> pd.DataFrame:
    """A legacy `predict` result as a DataFrame (1-D results become a `prediction` column)."""
    import numpy as np  # deferred: keep `import runtime_agent` light
    import pandas as pd

    if isinstance(out, pd.DataFrame):
        return out
    if isinstance(out, pd.Series):
        return out.to_frame(out.name if out.name is not None else "prediction")
    if isinstance(out, Mapping):
        return pd.DataFrame(dict(out))
    arr = np.asarray(out)
    if arr.ndim <= 1:
        return pd.DataFrame({"prediction": arr.reshape(-1)})
    return pd.DataFrame(arr, columns=[f"prediction_{i}" for i in range(arr.shape[1])])


class LegacyTrainOperator(Operator):
    """Runs a `TrainOperatorApi` instance through the new lifecycle, in the agent process."""

    read_roles: ClassVar[tuple[str, ...]] = ("source", "test_source")

    def __init__(self, legacy: TrainOperatorApi) -> None:
        self.legacy = legacy
        self.serving_object = getattr(legacy, "serving_object", None)  # type: ignore[misc]

    async def task_init_execute(self, ctx: OperatorContext) -> None:
        """Set the legacy attributes, load init_data whole, then call `initialization()`."""
        import pandas as pd  # deferred: keep `import runtime_agent` light

        self.legacy.labels = label_columns(ctx.operator_conf)
        self.legacy.operators_config = ctx.operator_conf
        self.legacy.model_config = ctx.model_conf
        frames = [df async for df in ctx.source("init_data")]
        self.legacy.init_data = (
            None if not frames else frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        )
        await call(self.legacy.initialization)

    def operate_execute(self, batch: pd.DataFrame, ctx: OperatorContext) -> None:
        """`execute(batch)` for the source role, `comparision_execute(batch)` for test_source."""
        if ctx.role == "test_source":
            out = self.legacy.comparision_execute(batch)
        else:
            out = self.legacy.execute(batch)
        self._handle(out, ctx)

    def task_finish_execute(self, ctx: OperatorContext) -> None:
        """Save `result()` as model.bin and report a `score` attribute if the operator set one."""
        data = self.legacy.result()
        if data is not None:
            if isinstance(data, str):
                data = data.encode()
            if not isinstance(data, bytes | bytearray):
                raise OperatorFailed("result", f"returned {type(data).__name__}; return the model as bytes")
            ctx.model_dir.mkdir(parents=True, exist_ok=True)
            (ctx.model_dir / MODEL_FILE).write_bytes(bytes(data))
        for attr in ("score", "model_score"):
            value = getattr(self.legacy, attr, None)
            if isinstance(value, int | float) and not isinstance(value, bool):
                ctx.report({"score": float(value)})
                break

    @staticmethod
    def _handle(out: Any, ctx: OperatorContext) -> None:
        import pandas as pd  # deferred: keep `import runtime_agent` light

        if isinstance(out, pd.DataFrame):
            ctx.emit(out)
        elif isinstance(out, Mapping):
            ctx.report(out)


class LegacyReasoningOperator(ReasoningOperator):
    """Serves (or batch-scores with) a `ReasoningOperatorApi` instance."""

    def __init__(self, legacy: ReasoningOperatorApi) -> None:
        self.legacy = legacy
        self.operator_conf: dict[str, Any] = {}
        self.model_conf: dict[str, Any] = {}

    def configure(self, operator_conf: Mapping[str, Any], model_conf: Mapping[str, Any]) -> None:
        """Set the configs handed to the legacy instance at `load`."""
        self.operator_conf = dict(operator_conf)
        self.model_conf = dict(model_conf)

    async def task_init_execute(self, ctx: OperatorContext) -> None:
        self.configure(ctx.operator_conf, ctx.model_conf)
        await call(self.load, ctx.model_dir)

    def load(self, model_dir: Path) -> None:
        """Set `model`, `model_path`, `model_dir` and the configs, then call `initialization()`."""
        model_dir = Path(model_dir)
        file = model_dir / MODEL_FILE
        if not file.is_file():
            files = [p for p in model_dir.rglob("*") if p.is_file()] if model_dir.is_dir() else []
            file = files[0] if len(files) == 1 else file
        self.legacy.model = file.read_bytes() if file.is_file() else None
        self.legacy.model_path = str(file) if file.is_file() else str(model_dir)
        self.legacy.model_dir = str(model_dir)
        self.legacy.operators_config = self.operator_conf
        self.legacy.model_config = self.model_conf
        self.legacy.labels = label_columns(self.operator_conf)
        self.legacy.initialization()

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        """`predict(df)` of the legacy instance, as a DataFrame."""
        return as_frame(self.legacy.predict(df))


def adapt(obj: Any) -> Any:
    """Wrap original-runtime operator instances; new-API operators pass through unchanged."""
    if isinstance(obj, TrainOperatorApi):
        return LegacyTrainOperator(obj)
    if isinstance(obj, ReasoningOperatorApi):
        return LegacyReasoningOperator(obj)
    return obj
