"""Pure helpers behind the commands: quickstart's dataset and spec, V2 encoding, durations."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

import pandas as pd
import pytest

from control.cli import render
from control.cli._spec import load_spec
from control.cli.quickstart import FEATURES, LABEL, make_dataset, prepare, write_spec
from control.cli.services import infer_urls, outputs_table, v2_request
from control.schemas import ServiceOut


def test_quickstart_dataset_is_separable_and_split(tmp_path: Path) -> None:
    train, test = make_dataset(tmp_path, 500)
    a, b = pd.read_csv(train), pd.read_parquet(test)
    assert (len(a), len(b)) == (400, 100)
    assert list(a.columns) == [f"f{i}" for i in range(FEATURES)] + [LABEL]
    assert set(a[LABEL]) == {0, 1}
    # a least-squares linear fit on train classifies every test row: the data is separable
    import numpy as np

    x = np.c_[a.drop(columns=[LABEL]).to_numpy(), np.ones(len(a))]
    w, *_ = np.linalg.lstsq(x, 2 * a[LABEL].to_numpy() - 1, rcond=None)
    xt = np.c_[b.drop(columns=[LABEL]).to_numpy(), np.ones(len(b))]
    assert ((xt @ w > 0).astype(int) == b[LABEL].to_numpy()).mean() >= 0.97
    assert make_dataset(tmp_path / "again", 500)[0].read_text() == train.read_text()  # seeded


def test_quickstart_spec_takes_the_epochs_and_points_at_its_folder(tmp_path: Path) -> None:
    spec = load_spec([write_spec(tmp_path, 7)], "default")
    assert spec.of("operators")[0].body["operatorEpoch"] == 7
    assert spec.of("operators")[0].body["deployType"] == "AUTO_DEPLOY"
    assert spec.of("connections")[0].body["connectAddr"] == str(tmp_path.resolve())
    assert (tmp_path / "quickstart.yaml").read_text().startswith("# Atom quickstart spec")
    directory, test, spec = prepare(Namespace(dir=str(tmp_path / "qs"), rows=100, epochs=3), "default")
    assert test == directory / "test.parquet" and test.exists()
    assert spec.of("nodes")[0].relation.sources == ["train", "test", "predictions"]  # type: ignore[union-attr]


def test_v2_request_types_and_missing_values() -> None:
    frame = pd.DataFrame({"a": [1.5, float("nan")], "b": [1, 2], "c": ["x", None], "d": [True, False]})
    body = v2_request(frame)
    assert [(i["name"], i["datatype"], i["data"]) for i in body["inputs"]] == [
        ("a", "FP64", [1.5, None]),
        ("b", "INT64", [1, 2]),
        ("c", "BYTES", ["x", None]),
        ("d", "BOOL", [True, False]),
    ]


def test_outputs_table_refuses_outputs_that_are_not_per_row() -> None:
    assert outputs_table({"outputs": [{"name": "y", "shape": [3], "data": [1, 2, 3]}]}, 2) is None
    assert outputs_table({"outputs": [{"name": "y", "shape": [2], "data": [1, 0]}]}, 2) is not None


@pytest.mark.parametrize(
    ("endpoint", "urls"),
    [
        ("http://h:1", ["http://h:1/v2/models/m/infer", "http://h:1/v2/models/svc/infer"]),
        ("h:1/", ["http://h:1/v2/models/m/infer", "http://h:1/v2/models/svc/infer"]),
        ("http://h:1/v2/models/m", ["http://h:1/v2/models/m/infer"]),
        ("http://h:1/v2/models/m/infer", ["http://h:1/v2/models/m/infer"]),
    ],
)
def test_infer_urls(endpoint: str, urls: list[str]) -> None:
    service = ServiceOut.model_validate({
        "id": 1, "serviceName": "svc", "spaceId": 1, "modelName": "m", "modelVersion": "1", "runtimeId": None,
        "replicas": 1, "endpoint": endpoint, "trafficWeight": 100, "state": "ready", "adapter": "local",
        "createdAt": "2026-01-01T00:00:00",
    })  # fmt: skip
    assert infer_urls(service) == urls


@pytest.mark.parametrize(("seconds", "text"), [(None, "-"), (4.25, "4.2s"), (61, "1m01s"), (3725, "1h02m")])
def test_fmt_duration(seconds: float | None, text: str) -> None:
    assert render.fmt_duration(seconds) == text
