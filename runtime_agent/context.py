"""`OperatorContext`: what the agent hands every operator hook (configs, logger, metrics, data, model dir)."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from control.schemas import SourceSpec

MetricsSink = Callable[[int, dict[str, float]], None]
SourceOpener = Callable[[str], AsyncIterator["pd.DataFrame"]]
FileOpener = Callable[[str], Awaitable[list[Path]]]


def logical_date_of(text: str | None) -> datetime | None:
    """A task spec's logicalDate (ISO 8601, UTC when it names no offset) as an aware datetime."""
    if not text:
        return None
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def clean_metrics(
    metrics: Mapping[str, Any], logger: logging.Logger | logging.LoggerAdapter[Any]
) -> dict[str, float]:
    """The finite numeric entries of `metrics` as floats; others are dropped with a warning."""
    values: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            logger.warning("metric %r=%r is not a number; not reported", key, value)
            continue
        if math.isfinite(number):
            values[str(key)] = number
        else:
            logger.warning("metric %r=%r is not finite; not reported", key, value)
    return values


class OperatorContext:
    """Everything an operator hook may use. One context per run; hooks may be sync or async.

    Attributes:
        run_id: the runtime id.
        operator_conf: the operator's operatorConf (the user's parameters).
        environment_conf: the operator's environmentConf.
        model_conf: the operator's modelConf (`scoreMetric` picks the model's score).
        envs: the task's env map.
        run_parameter: the task's runParameter map.
        epochs: operatorEpoch, the number of training epochs.
        model_dir: where the operator writes its model; the agent packs and uploads it.
        data_dir: the run's working directory.
        summary_dir: where metric summaries go (`metrics.jsonl`).
        share_dir: a directory shared between the runs of one exam.
        logical_date: the moment a scheduled or backfilled exam run stands for (UTC), else None;
            also in runParameter `logicalDate` and env ATOM_LOGICAL_DATE.
        logger: a logger for the operator's own lines (they land in the run's log).
        current_source: the data source whose batches are being processed (None outside them).
    """

    def __init__(
        self,
        *,
        run_id: int,
        operator_conf: Mapping[str, Any] | None = None,
        environment_conf: Mapping[str, Any] | None = None,
        model_conf: Mapping[str, Any] | None = None,
        envs: Mapping[str, str] | None = None,
        run_parameter: Mapping[str, str] | None = None,
        epochs: int = 1,
        model_dir: Path,
        data_dir: Path | None = None,
        summary_dir: Path | None = None,
        share_dir: Path | None = None,
        logger: logging.Logger | None = None,
        on_metrics: MetricsSink | None = None,
        open_source: SourceOpener | None = None,
        open_files: FileOpener | None = None,
        keep_emitted: bool = False,
        logical_date: datetime | None = None,
    ) -> None:
        self.run_id = run_id
        self.logical_date = logical_date
        self.operator_conf: dict[str, Any] = dict(operator_conf or {})
        self.environment_conf: dict[str, Any] = dict(environment_conf or {})
        self.model_conf: dict[str, Any] = dict(model_conf or {})
        self.envs: dict[str, str] = dict(envs or {})
        self.run_parameter: dict[str, str] = dict(run_parameter or {})
        self.epochs = epochs
        self.model_dir = Path(model_dir)
        self.data_dir = Path(data_dir) if data_dir else self.model_dir.parent
        self.summary_dir = Path(summary_dir) if summary_dir else self.data_dir
        self.share_dir = Path(share_dir) if share_dir else self.data_dir
        self.logger = logger or logging.getLogger("atom.operator")
        self.current_source: SourceSpec | None = None
        self.rows_read = 0
        self.stage = "starting"
        self._on_metrics = on_metrics
        self._open_source = open_source
        self._open_files = open_files
        self._lock = threading.Lock()
        self._step = 0
        self._last_metrics: dict[str, float] = {}
        self._metric_history: list[tuple[int, dict[str, float]]] = []
        self._emitted: list[pd.DataFrame] = []
        self._emitted_rows = 0
        self._keep_emitted = keep_emitted
        self._emitted_history: list[pd.DataFrame] = []
        self._collected: dict[str, list[pd.DataFrame]] = {}
        self.inputs: dict[str, dict[str, Any]] = {}
        """Input name -> the upstream artifact it resolved to (`name`, `kind`, `uri`, `value`, `runId`)."""
        self.declared_outputs: dict[str, Path] = {}
        self._load_input: Callable[[str], Awaitable[Path]] | None = None

    # -- metrics ------------------------------------------------------------------------------

    def report(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Report live metrics (sent to control as a MetricReport without blocking the caller).

        Safe to call from sync hooks (which run in a worker thread) and async hooks alike.

        Args:
            metrics: name -> number; non-numeric values are dropped with a warning.
            step: the step or epoch; None takes the previous step + 1.
        """
        values = clean_metrics(metrics, self.logger)
        if not values:
            return
        with self._lock:
            self._step = self._step + 1 if step is None else int(step)
            step_now = self._step
            self._last_metrics.update(values)
            self._metric_history.append((step_now, values))
        if self._on_metrics is not None:
            self._on_metrics(step_now, values)

    @property
    def last_metrics(self) -> dict[str, float]:
        """The latest value of every metric reported so far."""
        with self._lock:
            return dict(self._last_metrics)

    @property
    def metric_history(self) -> list[tuple[int, dict[str, float]]]:
        """Every `(step, values)` reported so far, in order."""
        with self._lock:
            return list(self._metric_history)

    # -- output rows --------------------------------------------------------------------------

    def emit(self, df: Any) -> None:
        """Hand rows to the task's sink(s); they are written in order, in chunks.

        Args:
            df: a pandas DataFrame (or anything `pandas.DataFrame(...)` accepts).
        """
        import pandas as pd  # deferred: keep `import runtime_agent` light

        frame = df if isinstance(df, pd.DataFrame) else pd.DataFrame(df)
        if frame.empty:
            return
        with self._lock:
            self._emitted.append(frame)
            self._emitted_rows += len(frame)
            if self._keep_emitted:
                self._emitted_history.append(frame)

    def drain_emitted(self) -> list[pd.DataFrame]:
        """Take the frames emitted since the last drain (the sink writer calls this)."""
        with self._lock:
            frames, self._emitted = self._emitted, []
            self._emitted_rows = 0
            return frames

    @property
    def pending_rows(self) -> int:
        """Rows emitted and not yet drained."""
        with self._lock:
            return self._emitted_rows

    @property
    def emitted_history(self) -> list[pd.DataFrame]:
        """Every frame emitted (only kept when the context was built with keep_emitted=True)."""
        with self._lock:
            return list(self._emitted_history)

    # -- artifacts between nodes ----------------------------------------------------------------

    def declare_output(self, name: str, path: str | Path) -> None:
        """Declare a file (or a directory, stored packed) as an output of this run.

        After the sinks commit the agent stores it beside the run's model and reports it; a
        downstream node names it `thisNode.<name>` in its inputs.

        Args:
            name: the output's name (letters, digits, `_ . - :`; not `model` or `metrics`).
            path: the local file or directory.
        """
        import re

        if not re.fullmatch(r"[A-Za-z0-9_.:/-]{1,128}", name) or name in ("model", "metrics"):
            raise ValueError(f"output name {name!r}: use letters, digits and _ . - : (not model or metrics)")
        with self._lock:
            self.declared_outputs[name] = Path(path)

    async def input_model(self, name: str = "model") -> Path:
        """The files of the model version input `name` resolved to, fetched into a local directory."""
        if self._load_input is None:
            raise RuntimeError("this context has no inputs attached")
        return await self._load_input(name)

    # -- input data ---------------------------------------------------------------------------

    def source(self, role: str = "source") -> AsyncIterator[pd.DataFrame]:
        """Read every data source with `role` (in `order`) as an async iterator of DataFrames.

        Use it from `async def` hooks (`async for df in ctx.source("init_data"): ...`); each call
        reads the sources again, through their connectors.

        Args:
            role: `source`, `test_source` or `init_data`.
        """
        if self._open_source is None:
            raise RuntimeError("this context has no data sources attached")
        return self._open_source(role)

    async def source_files(self, role: str = "source") -> list[Path]:
        """Local paths of every data source with `role`, for operators that work on files.

        Object-store and HTTP sources are downloaded into the shared file cache (parallel byte
        ranges; one download however many operators or runs need the same object; started
        before the operator loaded), FILE sources are the files themselves. The paths stay valid
        until the run ends.

        Args:
            role: `source`, `test_source` or `init_data`.
        """
        if self._open_files is None:
            raise RuntimeError("this context has no data sources attached")
        return await self._open_files(role)

    @property
    def role(self) -> str | None:
        """The role of `current_source` (`source`, `test_source`, `init_data`), or None."""
        if self.current_source is None:
            return None
        return str(self.current_source.source_type)

    def collect(self, batch: pd.DataFrame, role: str | None = None) -> None:
        """Keep `batch` for later (training, evaluation) under `role` (default: the current one)."""
        key = role or self.role or "source"
        with self._lock:
            self._collected.setdefault(key, []).append(batch)

    def frames(self, role: str = "source") -> list[pd.DataFrame]:
        """The batches collected under `role`, in order."""
        with self._lock:
            return list(self._collected.get(role, []))

    def frame(self, role: str = "source") -> pd.DataFrame | None:
        """The batches collected under `role` as one DataFrame, or None if there are none."""
        import pandas as pd  # deferred: keep `import runtime_agent` light

        frames = self.frames(role)
        if not frames:
            return None
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    @property
    def collected_roles(self) -> list[str]:
        """Roles that have collected batches."""
        with self._lock:
            return [role for role, frames in self._collected.items() if frames]
