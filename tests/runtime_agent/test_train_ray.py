"""TrainExample under real Ray Train on the suite's shared Ray head, from a spec file, in a real agent
process; the same spec under the direct executor leaves the same files, metrics and predictions."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from runtime_agent.timings import parse_line
from tests.runtime_agent.conftest import run_agent, tabular

pytestmark = [pytest.mark.ray, pytest.mark.slow]

RAY_NOISE = "Failed to query Ray Train Controller actor state"


def example_spec(data: Path) -> dict[str, Any]:
    files = {"connectName": "local-files", "connectType": "FILE", "connectAddr": str(data)}
    return {
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


def run_example(tmp_path: Path, name: str, **env: str) -> tuple[str, Path, pd.DataFrame]:
    """Run the example spec in an agent process; returns its log, its run dir and its predictions."""
    data = tmp_path / name / "data"
    data.mkdir(parents=True)
    tabular(300, seed=1).to_csv(data / "train.csv", index=False)
    tabular(80, seed=2).to_parquet(data / "test.parquet", index=False)
    spec_file = tmp_path / name / "task.yaml"
    spec_file.write_text(yaml.safe_dump(example_spec(data)))
    run_dir = tmp_path / name / "run"
    proc = run_agent(
        ["run", "--spec", str(spec_file)],
        cwd=tmp_path / name,
        timeout=300,
        ATOM_DATA_DIR=str(run_dir / "data"),
        ATOM_MODEL_DIR=str(run_dir / "model"),
        ATOM_SUMMARY_DIR=str(run_dir / "summary"),
        **env,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc.stderr, run_dir, pd.read_csv(data / "out" / "predictions.csv")


def archive_names(run_dir: Path) -> list[str]:
    archive = run_dir / "data" / "models" / "tabular" / "run-42" / "model.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(archive.read_bytes())) as tar:
        return sorted(tar.getnames())


def metric_keys(run_dir: Path) -> list[list[str]]:
    lines = (run_dir / "summary" / "metrics.jsonl").read_text().splitlines()
    return [sorted(json.loads(line)["values"]) for line in lines]


def test_train_example_on_the_shared_ray_head_matches_direct(tmp_path: Path, ray_cluster: Any) -> None:
    log, ray_run, ray_predictions = run_example(
        tmp_path, "ray", RAY_ADDRESS=ray_cluster.address, ATOM_TRAIN_EXECUTOR="ray"
    )
    # Ray Train on the shared head: connected to it, never started one, and no Ray noise
    assert f"ray: connecting to the cluster at {ray_cluster.address}" in log
    assert "starting a private local instance" not in log and "Started a local Ray instance" not in log
    assert "ray train: 1 worker(s), CPU" in log
    assert re.search(r"ray train finished in [\d.]+ s", log)
    assert RAY_NOISE not in log
    timings = parse_line(log)
    assert {"ray_connect", "train_start", "train", "train_stop", "ray_disconnect", "total"} <= set(timings)
    assert ray_cluster.running  # the agent only disconnected

    # per-epoch metrics from the Ray worker, the model archive, predictions for every test row
    assert re.findall(r"metrics step \d+: epoch=(\d)", log) == ["1", "2", "3"]
    assert archive_names(ray_run) == ["meta.json", "model.pt"]
    assert "runningAutoFinish task 5 {'runId': '42'}" in log
    assert list(ray_predictions.columns) == ["id", "label", "prediction"] and len(ray_predictions) == 80
    assert (ray_predictions.label == ray_predictions.prediction).mean() >= 0.9

    # auto picks the direct executor for one worker: no Ray at all, the same outputs
    direct_log, direct_run, direct_predictions = run_example(
        tmp_path, "direct", RAY_ADDRESS=ray_cluster.address
    )
    assert "direct train: 1 worker in the agent process, CPU" in direct_log
    assert "ray:" not in direct_log and "ray_connect" not in parse_line(direct_log)
    assert re.findall(r"metrics step \d+: epoch=(\d)", direct_log) == ["1", "2", "3"]
    assert archive_names(direct_run) == archive_names(ray_run)
    assert metric_keys(direct_run) == metric_keys(ray_run)
    direct_checkpoints = sorted((direct_run / "data" / "ray_results" / "run-42" / "direct").iterdir())
    ray_checkpoints = sorted(
        p for p in (ray_run / "data" / "ray_results" / "run-42").glob("checkpoint_*") if p.is_dir()
    )
    assert len(direct_checkpoints) == len(ray_checkpoints) == 1
    assert sorted(p.name for p in direct_checkpoints[0].iterdir()) == ["meta.json", "model.pt"]
    assert sorted(p.name for p in ray_checkpoints[0].iterdir()) == ["meta.json", "model.pt"]
    assert list(direct_predictions.columns) == list(ray_predictions.columns)
    assert len(direct_predictions) == len(ray_predictions)
