"""TrainExample end to end in-process (the local executor: the Ray path minus Ray) and the legacy API."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pandas as pd

from runtime_agent.compat import TrainOperatorApi
from runtime_agent.examples.legacy_example import CentroidReasoning, CentroidTrain
from runtime_agent.examples.train_example import TabularReasoning
from runtime_agent.testing import AgentRunner
from tests.runtime_agent.conftest import tabular
from tests.runtime_agent.operators import FailingTrainLoop


def test_train_example_learns_reports_and_emits(trained_example) -> None:  # type: ignore[no-untyped-def]
    result = trained_example
    epochs = [values["epoch"] for _, values in result.metrics]
    assert epochs == [1.0, 2.0, 3.0, 4.0]
    assert all({"loss", "accuracy", "test_accuracy", "score"} <= set(v) for _, v in result.metrics)
    assert result.metrics[-1][1]["loss"] < result.metrics[0][1]["loss"]
    # predictions for every test row reached the sink
    sink = result.sink
    assert list(sink.columns) == ["id", "label", "prediction"] and len(sink) == 60
    assert (sink.label == sink.prediction).mean() >= 0.9
    # the checkpoint is the model dir, packed and registered with its score
    assert {p.name for p in result.model_dir.iterdir()} == {"model.pt", "meta.json"}
    meta = json.loads((result.model_dir / "meta.json").read_text())
    assert meta["features"] == ["f0", "f1"] and meta["classes"] == [0, 1, 2]
    [version] = result.model_versions
    assert version.model_score == result.metrics[-1][1]["score"] >= 0.9
    assert version.serving_object == "runtime_agent.examples.train_example:TabularReasoning"
    archive = Path(version.model_address.removeprefix("file://"))
    with tarfile.open(fileobj=io.BytesIO(archive.read_bytes())) as tar:
        assert sorted(tar.getnames()) == ["meta.json", "model.pt"]


def test_tabular_reasoning_predicts_classes_and_probabilities(trained_example) -> None:  # type: ignore[no-untyped-def]
    reasoning = TabularReasoning()
    reasoning.load(trained_example.model_dir)
    df = tabular(50, seed=3)
    out = reasoning.predict(df.drop(columns=["label"]))
    assert list(out.columns) == ["prediction", "probability_0", "probability_1", "probability_2"]
    assert (out.prediction == df.label).mean() >= 0.9
    assert out.filter(like="probability_").sum(axis=1).round(4).eq(1).all()


def test_train_loop_error_fails_the_run() -> None:
    result = AgentRunner(FailingTrainLoop, sources={"source": tabular(10)}, epochs=3).run()
    assert not result.ok
    assert result.reason == (
        "failed in stage train after 10 rows: "
        "operator failed in train_loop: ArithmeticError: diverged after 3 epochs"
    )
    assert not result.model_versions


def test_legacy_operator_runs_unchanged(tmp_path: Path) -> None:
    assert issubclass(CentroidTrain, TrainOperatorApi)
    result = AgentRunner(
        CentroidTrain,
        sources={"source": tabular(200, seed=4), "test_source": tabular(50, seed=5), "init_data": tabular(3)},
        operator_read_num=64,
        workdir=tmp_path,
    ).run()
    assert result.ok, result.reason
    model = json.loads((result.model_dir / "model.bin").read_text())
    assert model["features"] == ["f0", "f1"] and model["classes"] == [0, 1, 2]
    [version] = result.model_versions
    assert version.model_score >= 0.9  # the operator's own `score` attribute
    sink = result.sink
    assert sink is not None and len(sink) == 50 and (sink.label == sink.prediction).mean() >= 0.9

    # the legacy reasoning operator batch-scores with that model in a REASONING run
    scored = AgentRunner(
        CentroidReasoning,
        sources={"source": tabular(20, seed=6)},
        runtime_type="REASONING",
        model_name=None,
        model_path=result.model_dir,
    ).run()
    assert scored.ok, scored.reason
    assert (
        scored.sink is not None
        and list(scored.sink.columns) == ["id", "prediction"]
        and len(scored.sink) == 20
    )


def test_legacy_init_data_is_set_before_initialization() -> None:
    seen: dict[str, object] = {}

    class Probe(TrainOperatorApi):
        def initialization(self) -> None:
            seen["init_rows"] = None if self.init_data is None else len(self.init_data)
            seen["labels"] = self.labels
            seen["conf"] = self.operators_config

        def execute(self, data: pd.DataFrame) -> dict[str, float]:
            seen["columns"] = list(data.columns)
            seen["batch_labels"] = self.labels
            return {"rows": float(len(data))}

    source = tabular(2)
    result = AgentRunner(
        Probe(), sources={"source": source, "init_data": tabular(2)}, operator_conf={"labels": "label,id"}
    ).run()
    assert result.ok, result.reason
    assert seen["init_rows"] == 2 and seen["labels"] is None and seen["conf"] == {"labels": "label,id"}
    # two label columns: one [label, id] pair per row; both are left out of the features
    assert seen["columns"] == ["f0", "f1"]
    assert seen["batch_labels"] == [[int(r.label), int(r.id)] for r in source.itertuples()]
    assert result.metrics == [(1, {"rows": 2.0})]
