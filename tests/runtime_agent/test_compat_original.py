"""Original-runtime operators (tests/runtime_agent/legacy_operators.py) run in-process through AgentRunner.

They get what the original runtime handed them: each batch's features, `self.labels` holding
that batch's label values, one `comparision_execute` per test batch, `result()` bytes as the
model, and a `ReasoningOperatorApi` whose `predict` sees feature columns only.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runtime_agent.compat import LegacyReasoningOperator, ReasoningOperatorApi, TrainOperatorApi
from runtime_agent.testing import AgentRunner
from tests.runtime_agent.conftest import tabular
from tests.runtime_agent.legacy_operators import PerceptronTrain, SoftmaxReasoning, SoftmaxTrain


@pytest.fixture(autouse=True)
def fresh_records() -> Iterator[None]:
    for records in (SoftmaxTrain.batches, SoftmaxTrain.test_batches, SoftmaxReasoning.seen_columns):
        records.clear()
    PerceptronTrain.rows.clear()
    yield


def test_softmax_train_gets_features_and_each_batch_labels(tmp_path: Path) -> None:
    train, test = tabular(250, seed=1), tabular(70, seed=2)
    result = AgentRunner(
        SoftmaxTrain,
        sources={"source": train, "test_source": test},
        operator_conf={"classes": 3},
        operator_read_num=64,
        workdir=tmp_path,
    ).run()
    assert result.ok, result.reason
    # at most operatorReadNum rows per execute call, labels of the same length, no label / id column
    assert [n for n, _, _ in SoftmaxTrain.batches] == [64, 64, 64, 58]
    assert all(n == labels for n, labels, _ in SoftmaxTrain.batches)
    assert {tuple(cols) for _, _, cols in SoftmaxTrain.batches} == {("f0", "f1")}
    assert SoftmaxTrain.test_batches == [(64, 64), (6, 6)]
    # the model is result()'s pickle, stored and registered with the operator's score
    params = pickle.loads((result.model_dir / "model.bin").read_bytes())
    assert params["w"].shape == (3, 3)
    [version] = result.model_versions
    assert version.model_score >= 0.9
    accuracies = [v["test_accuracy"] for _, v in result.metrics if "test_accuracy" in v]
    assert len(accuracies) == 2 and accuracies[-1] == version.model_score

    # the reasoning operator batch-scores a labelled table: predict sees the features only
    scored = AgentRunner(
        SoftmaxReasoning,
        sources={"source": tabular(30, seed=3)},
        runtime_type="REASONING",
        model_name=None,
        model_path=result.model_dir,
    ).run()
    assert scored.ok, scored.reason
    assert SoftmaxReasoning.seen_columns == [["f0", "f1"]]
    sink = scored.sink
    assert sink is not None and list(sink.columns) == ["id", "prediction"]
    truth = tabular(30, seed=3)
    assert sink.id.tolist() == truth.id.tolist()
    assert (sink.prediction == truth.label).mean() >= 0.9


def test_labels_are_this_batch_values_not_the_column_name() -> None:
    seen: list[tuple[list[float], list[int]]] = []

    class Recorder(TrainOperatorApi):
        def execute(self, data: pd.DataFrame) -> None:
            seen.append((data["x"].tolist(), self.labels))

    df = pd.DataFrame({"key": [10, 11, 12, 13, 14], "x": [0.0, 1.0, 2.0, 3.0, 4.0], "y": [1, 0, 1, 1, 0]})
    result = AgentRunner(
        Recorder,
        sources={"source": df},
        operator_conf={"labelColumn": "y", "keyColumns": "key"},
        operator_read_num=2,
    ).run()
    assert result.ok, result.reason
    assert seen == [([0.0, 1.0], [1, 0]), ([2.0, 3.0], [1, 1]), ([4.0], [0])]


def test_list_data_type_hands_rows_like_the_original_converters() -> None:
    df = tabular(40, classes=2, seed=5)
    result = AgentRunner(PerceptronTrain, sources={"source": df}, operator_read_num=16).run()
    assert result.ok, result.reason
    assert PerceptronTrain.rows == [
        ("list", 16, "list", 16),
        ("list", 16, "list", 16),
        ("list", 8, "list", 8),
    ]
    w = pickle.loads((result.model_dir / "model.bin").read_bytes())
    assert w.shape == (3,)  # f0, f1 and the bias: the id and label columns never reached it


def test_numpy_data_type_from_operator_conf() -> None:
    shapes: list[tuple[str, tuple[int, ...], str]] = []

    class Arrays(TrainOperatorApi):
        def execute(self, data: np.ndarray) -> None:
            shapes.append((type(data).__name__, data.shape, type(self.labels).__name__))

    result = AgentRunner(
        Arrays, sources={"source": tabular(10)}, operator_conf={"dataType": "numpy"}, operator_read_num=4
    ).run()
    assert result.ok, result.reason
    assert shapes == [
        ("ndarray", (4, 2), "ndarray"),
        ("ndarray", (4, 2), "ndarray"),
        ("ndarray", (2, 2), "ndarray"),
    ]


def test_missing_configured_label_column_fails_with_one_line() -> None:
    result = AgentRunner(
        SoftmaxTrain, sources={"source": tabular(10)}, operator_conf={"labelColumn": "target"}
    ).run()
    assert not result.ok
    assert "label column(s) 'target' not in source 'source-0'" in result.reason
    assert "set operatorConf.labelColumn" in result.reason and "\n" not in result.reason


def test_unlabelled_data_leaves_labels_none() -> None:
    seen: list[object] = []

    class Unlabelled(TrainOperatorApi):
        def execute(self, data: pd.DataFrame) -> None:
            seen.append((list(data.columns), self.labels))

    df = pd.DataFrame({"id": [1, 2], "a": [0.5, 0.7], "b": ["x", "y"]})
    result = AgentRunner(Unlabelled, sources={"source": df}).run()
    assert result.ok, result.reason
    assert seen == [(["a", "b"], None)]


def test_configs_init_data_and_initialization_order() -> None:
    seen: dict[str, object] = {}

    class Configured(TrainOperatorApi):
        def initialization(self) -> None:
            seen["operators_config"] = self.operators_config
            seen["model_config"] = self.model_config
            seen["mode_config"] = self.mode_config
            seen["init_data"] = None if self.init_data is None else list(self.init_data.columns)

    result = AgentRunner(
        Configured,
        sources={"source": tabular(3), "init_data": tabular(2)},
        operator_conf={"lr": 0.1},
        model_conf={"servingObject": "m:C"},
    ).run()
    assert result.ok, result.reason
    assert seen == {
        "operators_config": {"lr": 0.1},
        "model_config": {"servingObject": "m:C"},
        "mode_config": {"servingObject": "m:C"},
        "init_data": ["id", "f0", "f1", "label"],  # init_data is handed whole
    }
    assert not result.model_versions  # result() returned None: no model


def test_result_may_name_a_model_file(tmp_path: Path) -> None:
    weights = tmp_path / "weights.npy"

    class SavesAFile(TrainOperatorApi):
        def execute(self, data: pd.DataFrame) -> None:
            np.save(weights, np.asarray(data, dtype=float).mean(axis=0))

        def result(self) -> str:
            return str(weights)

    result = AgentRunner(SavesAFile, sources={"source": tabular(8)}, workdir=tmp_path / "run").run()
    assert result.ok, result.reason
    assert (result.model_dir / "model.bin").read_bytes() == weights.read_bytes()
    assert len(result.model_versions) == 1


def test_reasoning_model_info_and_none_prediction(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.bin").write_bytes(b"\x00weights")

    class Loads(ReasoningOperatorApi):
        def initialization(self) -> None:
            assert self.model is not None
            self.raw = self.model.get_model()
            self.path = self.model.get_model_path()

    op = LegacyReasoningOperator(Loads())
    op.configure({}, {})
    op.load(model_dir)
    legacy = op.legacy
    assert isinstance(legacy, Loads)
    assert legacy.raw == b"\x00weights" and legacy.path == str(model_dir / "model.bin")
    assert legacy.get_mode_path() == legacy.path
    with pytest.raises(Exception, match="returned None"):
        op.predict(pd.DataFrame({"f0": [1.0]}))


def test_data_operator_streams_batches_then_executes_once() -> None:
    from runtime_agent.compat import DataOperatorApi

    calls: list[tuple[str, int]] = []

    class Counts(DataOperatorApi):
        def initialization(self) -> None:
            self.rows: dict[str, int] = {}

        def stream_execute(self, source: str, data: pd.DataFrame) -> None:
            calls.append((source, len(data)))
            self.rows[source] = self.rows.get(source, 0) + len(data)

        def execute(self) -> pd.DataFrame:
            return pd.DataFrame({"source": list(self.rows), "rows": list(self.rows.values())})

    result = AgentRunner(
        Counts,
        sources={"source": tabular(7), "test_source": tabular(3)},
        runtime_type="PYTHON_DATA",
        operator_read_num=4,
    ).run()
    assert result.ok, result.reason
    assert calls == [("source-0", 4), ("source-0", 3), ("test_source-0", 3)]
    assert result.sink is not None and result.sink.to_dict("list") == {
        "source": ["source-0", "test_source-0"],
        "rows": [7, 3],
    }
