"""Compatibility layer for operators written for the original Atom runtime (change only the import).

```python
from runtime_agent.compat import TrainOperatorApi  # was: atom_runtime.atom_runtime_api.operator.train_api

class MyTrain(TrainOperatorApi):
    def initialization(self): ...         # configs and init_data are set
    def execute(self, data): ...          # data: one batch's features; self.labels: its label values
    def comparision_execute(self, data):  # the same per test_source batch (the original spelling)
    def result(self): ...                 # the model: bytes, or the path of a file or directory
```

Where each behaviour comes from (paths in github.com/githublaohu/atom, under
`atom-python-runtime/atom_runtime/`):

- The classes and their members: `atom_runtime_api/operator/operators_api.py` (`OperatorApi`:
  `operators_config`, `model_config`, `init_data`, `model`, the `set_*` setters, `initialization`,
  `do_initialization`; `set_mode_config` stores `mode_config`, so both names are set here),
  `train_api.py` (`TrainOperatorApi`: `labels`, `execute`, `comparision_execute`, `result`),
  `reasoning_api.py` (`ReasoningOperatorApi.predict`, None by default), `data_api.py`
  (`DataOperatorApi`: `execute()`, `stream_execute(source, data)`; the original never called them,
  here `stream_execute(source name, whole batch)` runs per batch and `execute()` once at the end),
  `model_info.py` (`ModelInfo`: `model_path`, `get_model()`, `get_model_path()`).
- The batch split: `source/source.py` (`SourceStreamAPI.batch`: convert the batch, set the
  operator's labels from the converter, then call the hook with the converted data),
  `data_set/convert/csv_convert.py` (`LabelsCSVConvert.split_sample`: features and labels as two
  lists, one entry per row; the other converters give no labels, so `labels` is not set) and
  `operators/train_operator.py` (`set_operator_object`: `labels` is that batch's label list);
  `example/train_example.py` feeds `data` and `self.labels` to its model per batch. The
  original picked the converter by the source's dataFormat (`labelsCSV`: a pickled list of
  `(features, label)` pairs); here dataFormat is the file format and the split is by column.
  Here a batch is a DataFrame: the label columns are operatorConf `labels` (list or
  comma-separated) or `labelColumn`, then the same keys of modelConf, else `label`; several label
  columns give one list of values per row. The features are the other columns less the key
  columns (`idColumn`, default `id`, `keyColumns`, the source's `sourceConf.key`) and `_atom_run`.
  A configured label column missing from a batch fails the run; the default `label` missing
  leaves `labels` None (as for the original's unlabelled formats). Features are a DataFrame;
  `dataType: list` (operatorConf, or a `data_type()` method or attribute on the operator, as
  in `atom_runtime_api/operator/README.md`) hands a list of row lists like the original's
  converters, `dataType: numpy` a 2-D array (labels then an array too).
- The run: `operators/train_operator.py` (`execute` per batch of `source`, `comparision_execute`
  per batch of `test_source`, one pass each, `operatorEpoch` unused; then `result()` once) and
  `source/source.py` (`Source.train_upload`: a `str` result is a file path whose bytes are the
  model). The original read `self.source` again for `comparision_execute` and wrote the model to
  the sink; here the test source is read, and the model goes to model.bin in the model directory
  (a directory path is copied whole), stored and registered as a model version.
- Roles and configs: `service/operator_service.py` (`CreateOperator`: roles `source`,
  `test_source`, `init_data`, anything else a sink; configs through `set_mode_config` /
  `set_operators_config`; `do_initialization()`). The original called `initialization()` before
  the configs and `init_data` were set and handed `init_data` as its `Source` reader; here configs
  (dicts, as control parses them) and `init_data` (the init_data rows as one DataFrame, labels
  included, or None) are set first.
- Inference: `operators/reasoning_operator.py` (`do_initialization()`, then `predict(data)` per
  request) and `example/reasoning_example.py` (predict returns a list; `get_mode_path()`).
  `predict` gets the request's or batch's feature columns only (label and key columns dropped),
  shaped as for training; its result (list, array, Series, dict of columns, DataFrame) becomes
  the `prediction` column(s). `model` is a `ModelInfo` whose `get_model()` returns the model bytes.

Beyond the original: `execute` / `comparision_execute` may return a DataFrame (emitted to the
sink) or a dict of metrics (reported); a numeric `score` (or `model_score`) attribute after
`result()` becomes the model version's score; a REASONING run batch-scores its sources, emitting
the batch's key columns beside the predictions.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from runtime_agent._aio import call
from runtime_agent._compat_data import BatchShape, source_keys
from runtime_agent.api import Operator, ReasoningOperator
from runtime_agent.errors import OperatorFailed

if TYPE_CHECKING:
    import pandas as pd

    from runtime_agent.context import OperatorContext

MODEL_FILE = "model.bin"

__all__ = [
    "DataOperatorApi",
    "LegacyDataOperator",
    "LegacyReasoningOperator",
    "LegacyTrainOperator",
    "ModelInfo",
    "OperatorApi",
    "ReasoningOperatorApi",
    "TrainOperatorApi",
    "adapt",
    "as_frame",
]


class ModelInfo:
    """The model an inference operator loads (`self.model`).

    Attributes:
        model_path: the model file (model.bin, or the only file of the model), else the directory.
        model_dir: the unpacked model directory.
    """

    def __init__(self, model_path: str = "", model_dir: str = "") -> None:
        self.model_path = model_path
        self.model_dir = model_dir

    def get_model(self) -> bytes | None:
        """The model file's bytes, or None when the model is a directory or missing."""
        path = Path(self.model_path) if self.model_path else None
        return path.read_bytes() if path is not None and path.is_file() else None

    def get_model_path(self) -> str:
        """The model file's (or directory's) path."""
        return self.model_path


class OperatorApi:
    """Base of every original-runtime operator: configs, init data and the model."""

    operators_config: dict[str, Any]
    model_config: dict[str, Any]
    mode_config: dict[str, Any]
    init_data: pd.DataFrame | None = None
    model: ModelInfo | None = None

    def set_mode_config(self, mode_config: dict[str, Any]) -> None:
        """Set modelConf (as `mode_config`, the original's spelling, and `model_config`)."""
        self.mode_config = mode_config
        self.model_config = mode_config

    def set_operators_config(self, operators_config: dict[str, Any]) -> None:
        """Set operatorConf."""
        self.operators_config = operators_config

    def set_init_data(self, init_data: Any) -> None:
        """Set the init_data rows."""
        self.init_data = init_data

    def set_model(self, model: ModelInfo) -> None:
        """Set the model to load."""
        self.model = model

    def initialization(self) -> None:
        """Called once, after the configs and `init_data` (or the model) are set."""

    def do_initialization(self) -> None:
        """What the agent calls: `initialization()`."""
        self.initialization()


class TrainOperatorApi(OperatorApi):
    """Base of original-runtime training operators. Override the methods below."""

    labels: Any = None

    def execute(self, data: Any) -> Any:
        """Per batch of the `source` role: `data` is the features, `self.labels` the label values."""

    def comparision_execute(self, data: Any) -> Any:
        """Per batch of the `test_source` role, like `execute` (the original API's spelling)."""

    def result(self) -> Any:
        """The trained model: bytes, or the path of a file or directory; None for no model."""
        return None


class ReasoningOperatorApi(OperatorApi):
    """Base of original-runtime inference operators.

    Before `initialization()` the agent sets `model` (a `ModelInfo`), `model_path` (the model
    file, as a string), `model_dir` and the configs.
    """

    model_path: str = ""
    model_dir: str = ""

    def get_mode_path(self) -> str:
        """The model file's path (the spelling of the original's reasoning example)."""
        return self.model_path

    def get_model_path(self) -> str:
        """The model file's path."""
        return self.model_path

    def predict(self, data: Any) -> Any:
        """Predictions for `data` (feature columns only): a list, array, Series, dict or DataFrame."""
        return None


class DataOperatorApi(OperatorApi):
    """Base of original-runtime data operators: `stream_execute` per batch, `execute()` at the end."""

    def execute(self) -> Any:
        """Once, after every batch of every source."""

    def stream_execute(self, source: str, data: pd.DataFrame) -> Any:
        """Per batch: `source` is the data source's name, `data` the whole batch."""


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


def _configure(legacy: OperatorApi, operator_conf: Mapping[str, Any], model_conf: Mapping[str, Any]) -> None:
    legacy.set_mode_config(dict(model_conf))
    legacy.set_operators_config(dict(operator_conf))


def _shape(legacy: Any, operator_conf: Mapping[str, Any], model_conf: Mapping[str, Any]) -> BatchShape:
    declared = getattr(legacy, "data_type", None)
    if callable(declared):
        declared = declared()
    return BatchShape.from_conf(operator_conf, model_conf, data_type=declared)


def _handle(out: Any, ctx: OperatorContext) -> None:
    import pandas as pd  # deferred: keep `import runtime_agent` light

    if isinstance(out, pd.DataFrame):
        ctx.emit(out)
    elif isinstance(out, Mapping):
        ctx.report(out)


class LegacyTrainOperator(Operator):
    """Runs a `TrainOperatorApi` instance through the new lifecycle, in the agent process."""

    read_roles: ClassVar[tuple[str, ...]] = ("source", "test_source")

    def __init__(self, legacy: TrainOperatorApi) -> None:
        self.legacy = legacy
        self.serving_object = getattr(legacy, "serving_object", None)  # type: ignore[misc]
        self.shape = BatchShape()

    async def task_init_execute(self, ctx: OperatorContext) -> None:
        """Set the configs, load init_data whole, then call `do_initialization()`."""
        import pandas as pd  # deferred: keep `import runtime_agent` light

        self.shape = _shape(self.legacy, ctx.operator_conf, ctx.model_conf)
        _configure(self.legacy, ctx.operator_conf, ctx.model_conf)
        frames = [df async for df in ctx.source("init_data")]
        self.legacy.init_data = (
            None if not frames else frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        )
        self.legacy.labels = None
        await call(self.legacy.do_initialization)

    def operate_execute(self, batch: pd.DataFrame, ctx: OperatorContext) -> None:
        """Split the batch, set `labels`, call `execute` (source) or `comparision_execute` (test_source)."""
        source = ctx.current_source
        name = source.source_name if source is not None else "source"
        keys = source_keys(source.source_conf) if source is not None else ()
        features, labels = self.shape.split(batch, name, keys)
        self.legacy.labels = labels
        if ctx.role == "test_source":
            out = self.legacy.comparision_execute(features)
        else:
            out = self.legacy.execute(features)
        _handle(out, ctx)

    def task_finish_execute(self, ctx: OperatorContext) -> None:
        """Save `result()` in the model directory; report a `score` attribute if the operator set one."""
        save_result(self.legacy.result(), ctx.model_dir)
        for attr in ("score", "model_score"):
            value = getattr(self.legacy, attr, None)
            if isinstance(value, int | float) and not isinstance(value, bool):
                ctx.report({"score": float(value)})
                break


def save_result(data: Any, model_dir: Path) -> None:
    """Write a legacy `result()` into `model_dir`: bytes as model.bin, a path's file or directory.

    Raises:
        OperatorFailed: the result is another type, or a path that does not exist.
    """
    if data is None:
        return
    if isinstance(data, str | Path):
        path = Path(data)
        model_dir.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, model_dir, dirs_exist_ok=True)
        elif path.is_file():
            shutil.copyfile(path, model_dir / MODEL_FILE)
        else:
            raise OperatorFailed("result", f"returned the path {str(path)!r}, which does not exist")
        return
    if not isinstance(data, bytes | bytearray | memoryview):
        raise OperatorFailed(
            "result", f"returned {type(data).__name__}; return the model as bytes or a file path"
        )
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / MODEL_FILE).write_bytes(bytes(data))


class LegacyReasoningOperator(ReasoningOperator):
    """Serves (or batch-scores with) a `ReasoningOperatorApi` instance."""

    def __init__(self, legacy: ReasoningOperatorApi) -> None:
        self.legacy = legacy
        self.operator_conf: dict[str, Any] = {}
        self.model_conf: dict[str, Any] = {}
        self.shape = BatchShape()

    def configure(self, operator_conf: Mapping[str, Any], model_conf: Mapping[str, Any]) -> None:
        """Set the configs handed to the legacy instance at `load`."""
        self.operator_conf = dict(operator_conf)
        self.model_conf = dict(model_conf)
        self.shape = _shape(self.legacy, self.operator_conf, self.model_conf)

    async def task_init_execute(self, ctx: OperatorContext) -> None:
        self.configure(ctx.operator_conf, ctx.model_conf)
        await call(self.load, ctx.model_dir)

    def load(self, model_dir: Path) -> None:
        """Set `model`, `model_path`, `model_dir` and the configs, then call `do_initialization()`."""
        model_dir = Path(model_dir)
        file = model_dir / MODEL_FILE
        if not file.is_file():
            files = [p for p in model_dir.rglob("*") if p.is_file()] if model_dir.is_dir() else []
            file = files[0] if len(files) == 1 else file
        path = str(file) if file.is_file() else str(model_dir)
        self.legacy.set_model(ModelInfo(path, str(model_dir)))
        self.legacy.model_path = path
        self.legacy.model_dir = str(model_dir)
        _configure(self.legacy, self.operator_conf, self.model_conf)
        self.legacy.do_initialization()

    def predict(self, df: pd.DataFrame, extra_keys: tuple[str, ...] = ()) -> pd.DataFrame:
        """`predict(features)` of the legacy instance, as a DataFrame (label and key columns dropped)."""
        out = self.legacy.predict(self.shape.shape(self.shape.feature_frame(df, extra_keys)))
        if out is None:
            raise OperatorFailed("predict", "returned None; return one prediction per row")
        return as_frame(out)

    async def operate_execute(self, batch: pd.DataFrame, ctx: OperatorContext) -> Any:
        """Emit the predictions for `batch`, after the batch's key columns."""
        source = ctx.current_source
        extra = source_keys(source.source_conf) if source is not None else ()
        out = await call(self.predict, batch, extra)
        keys = [c for c in (*self.shape.keys, *extra) if c in batch.columns and c not in out.columns]
        keys = list(dict.fromkeys(keys))
        if keys and len(out) == len(batch):
            out = out.reset_index(drop=True)
            for i, key in enumerate(keys):
                out.insert(i, key, batch[key].to_numpy())
        ctx.emit(out)


class LegacyDataOperator(Operator):
    """Runs a `DataOperatorApi` instance: `stream_execute(source, batch)` per batch, then `execute()`."""

    def __init__(self, legacy: DataOperatorApi) -> None:
        self.legacy = legacy

    async def task_init_execute(self, ctx: OperatorContext) -> None:
        """Set the configs, then call `do_initialization()`."""
        _configure(self.legacy, ctx.operator_conf, ctx.model_conf)
        await call(self.legacy.do_initialization)

    def operate_execute(self, batch: pd.DataFrame, ctx: OperatorContext) -> None:
        """`stream_execute(source name, batch)`."""
        name = ctx.current_source.source_name if ctx.current_source is not None else "source"
        _handle(self.legacy.stream_execute(name, batch), ctx)

    def task_finish_execute(self, ctx: OperatorContext) -> None:
        """`execute()` once at the end."""
        _handle(self.legacy.execute(), ctx)


def adapt(obj: Any) -> Any:
    """Wrap original-runtime operator instances; new-API operators pass through unchanged."""
    if isinstance(obj, TrainOperatorApi):
        return LegacyTrainOperator(obj)
    if isinstance(obj, ReasoningOperatorApi):
        return LegacyReasoningOperator(obj)
    if isinstance(obj, DataOperatorApi):
        return LegacyDataOperator(obj)
    return obj
