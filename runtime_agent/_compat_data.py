"""Batch shaping for original-runtime operators: which columns are features, labels and keys.

The original runtime's `labelsCSV` converter split every batch it read into the features and
that batch's labels (`LabelsCSVConvert.split_sample` in `data_set/convert/csv_convert.py`),
handed the features to the operator and set the label list on it. Here a batch is a DataFrame,
so the split is by column; `runtime_agent.compat` documents the rules.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.base import RUN_COLUMN
from runtime_agent.errors import OperatorFailed

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

DEFAULT_LABEL = "label"
DEFAULT_ID = "id"
DATA_TYPES: dict[str, str] = {
    "frame": "frame",
    "dataframe": "frame",
    "pandas": "frame",
    "list": "list",
    "numpy": "numpy",
    "ndarray": "numpy",
}
"""Accepted `dataType` values, mapped to the shape the operator's data takes."""


def names(value: Any) -> tuple[str, ...] | None:
    """Column names from a config value: a list, or a comma-separated string; None when unset."""
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if str(v).strip())
    return (str(value),)


def _first(confs: Sequence[Mapping[str, Any]], *keys: str) -> tuple[str, ...] | None:
    for conf in confs:
        for key in keys:
            found = names(conf.get(key))
            if found is not None:
                return found
    return None


@dataclass(frozen=True)
class BatchShape:
    """How an original-runtime operator sees a batch.

    Attributes:
        labels: the label columns (empty: the data has no labels).
        labels_given: True when the configuration named them (a missing one is then an error).
        keys: key columns, dropped from the features wherever present.
        data_type: frame (a DataFrame), list (a list of rows) or numpy (a 2-D array).
    """

    labels: tuple[str, ...] = (DEFAULT_LABEL,)
    labels_given: bool = False
    keys: tuple[str, ...] = (DEFAULT_ID,)
    data_type: str = "frame"

    @classmethod
    def from_conf(
        cls,
        operator_conf: Mapping[str, Any],
        model_conf: Mapping[str, Any],
        *,
        data_type: Any = None,
    ) -> BatchShape:
        """The shape from operatorConf (then modelConf): labels / labelColumn, keyColumns / idColumn.

        Raises:
            OperatorFailed: `dataType` names no known shape.
        """
        confs = (operator_conf, model_conf)
        labels = _first(confs, "labels", "labelColumn")
        keys = (_first(confs, "idColumn") or (DEFAULT_ID,)) + (_first(confs, "keyColumns", "keyColumn") or ())
        raw = (
            data_type
            if data_type is not None
            else next((c["dataType"] for c in confs if "dataType" in c), None)
        )
        kind = DATA_TYPES.get(str(raw or "frame").strip().lower())
        if kind is None:
            raise OperatorFailed(
                "data_type", f"{raw!r} is not a data type: use one of {', '.join(sorted(set(DATA_TYPES)))}"
            )
        return cls(
            labels=labels if labels is not None else (DEFAULT_LABEL,),
            labels_given=labels is not None,
            keys=tuple(dict.fromkeys(k for k in keys if k not in (labels or ()))),
            data_type=kind,
        )

    def feature_frame(self, batch: pd.DataFrame, extra_keys: Sequence[str] = ()) -> pd.DataFrame:
        """`batch` without its label, key and run-key columns."""
        drop = [c for c in (*self.labels, *self.keys, *extra_keys, RUN_COLUMN) if c in batch.columns]
        return batch.drop(columns=list(dict.fromkeys(drop))) if drop else batch

    def split(self, batch: pd.DataFrame, source: str, extra_keys: Sequence[str] = ()) -> tuple[Any, Any]:
        """The batch's features (shaped by `data_type`) and its label values.

        Labels are a list with one entry per row: the value of the label column, or the list of
        the label columns' values when there are several (numpy: an array). They are None when
        the batch has no label column and none was configured.

        Raises:
            OperatorFailed: a configured label column is missing from the batch.
        """
        present = [c for c in self.labels if c in batch.columns]
        labels: Any = None
        if present and len(present) == len(self.labels):
            one = len(present) == 1
            labels = batch[present[0]].tolist() if one else batch[present].to_numpy().tolist()
        elif self.labels_given or present:
            missing = [c for c in self.labels if c not in batch.columns]
            raise OperatorFailed(
                "execute",
                f"label column(s) {', '.join(map(repr, missing))} not in source {source!r} "
                f"(columns: {', '.join(map(str, batch.columns))}); set operatorConf.labelColumn",
            )
        features = self.shape(self.feature_frame(batch, extra_keys))
        if labels is not None and self.data_type == "numpy":
            import numpy as np  # deferred: keep `import runtime_agent` light

            labels = np.asarray(labels)
        return features, labels

    def shape(self, features: pd.DataFrame) -> Any:
        """Features as the operator wants them: the DataFrame, a list of row lists, or an array."""
        if self.data_type == "list":
            return features.to_numpy().tolist()
        if self.data_type == "numpy":
            return features.to_numpy()
        return features


def source_keys(source_conf: Mapping[str, Any]) -> tuple[str, ...]:
    """Key columns a data source names (`sourceConf.key`, its paging key)."""
    return names(source_conf.get("key")) or ()
