"""TrainExample under real Ray Train, from a spec file, in a real agent process (the suite's one Ray test)."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.runtime_agent.conftest import run_agent, tabular

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_train_example_on_ray_from_a_spec_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    tabular(300, seed=1).to_csv(data / "train.csv", index=False)
    tabular(80, seed=2).to_parquet(data / "test.parquet", index=False)
    files = {"connectName": "local-files", "connectType": "FILE", "connectAddr": str(data)}
    spec = {
        "runId": 42,
        "nodeId": 5,
        "nodeName": "tabular-train",
        "operator": {
            "operatorName": "train-example",
            "operatorRuntimeType": "TRAIN",
            "moduleName": "atom_runtime.example.train_example",  # the seed's path, aliased
            "executeObject": "TrainExample",
            "operatorConf": {"labelColumn": "label", "hidden": 16, "lr": 0.05},
            "operatorEpoch": 3,
        },
        "sources": [
            {
                "sourceName": "train",
                "sourceType": "source",
                "operateExecute": "train.csv",
                "operatorReadNum": 128,
                "order": 0,
                "dataExecuteBefore": "string",
                "connection": files,
            },
            {
                "sourceName": "test",
                "sourceType": "test_source",
                "operateExecute": "test.parquet",
                "disposable": True,
                "order": 1,
                "connection": files,
            },
            {
                "sourceName": "predictions",
                "sourceType": "sink",
                "operateExecute": "out/predictions.csv",
                "connection": files,
            },
        ],
        "model": {"modelName": "tabular", "connection": {"connectName": "models", "connectType": "FILE"}},
    }
    spec_file = tmp_path / "task.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    run_dir = tmp_path / "run"

    proc = run_agent(
        ["run", "--spec", str(spec_file)],
        cwd=tmp_path,
        timeout=300,
        ATOM_DATA_DIR=str(run_dir / "data"),
        ATOM_MODEL_DIR=str(run_dir / "model"),
        ATOM_SUMMARY_DIR=str(run_dir / "summary"),
        ATOM_RAY_NUM_CPUS="2",
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    log = proc.stderr

    # the model archive went to <ATOM_DATA_DIR>/models (the FILE connection has no base dir)
    archive = run_dir / "data" / "models" / "tabular" / "run-42" / "model.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(archive.read_bytes())) as tar:
        assert sorted(tar.getnames()) == ["meta.json", "model.pt"]
    assert f"model version: {archive.as_uri()}" in log

    # predictions for every test row, written through the sink connector
    predictions = pd.read_csv(data / "out" / "predictions.csv")
    assert list(predictions.columns) == ["id", "label", "prediction"] and len(predictions) == 80
    assert (predictions.label == predictions.prediction).mean() >= 0.9

    # per-epoch metrics from the Ray worker, and the finish call
    epochs = re.findall(r"metrics step \d+: epoch=(\d)", log)
    assert epochs == ["1", "2", "3"]
    assert (run_dir / "summary" / "metrics.jsonl").read_text().count("\n") == 3
    assert "runningAutoFinish task 5 {'runId': '42'}" in log
    assert "ray train: 1 worker(s), CPU" in log
    assert re.search(r"ray: ready in [\d.]+ s", log) and re.search(r"ray train finished in [\d.]+ s", log)
