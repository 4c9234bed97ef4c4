"""Ray Train sized by the run's service info on the suite's shared Ray head: two CPU workers that each
train on their own shard, and a request the cluster can never hold failing before `fit()`."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime_agent.api import TrainOperator
from tests.runtime_agent.conftest import run_agent, tabular

pytestmark = [pytest.mark.ray, pytest.mark.slow]


class ShardProbe(TrainOperator):
    """Each rank writes what it saw (world size, its shard's ids, its env) to `probeDir`."""

    @staticmethod
    def train_loop(config: dict[str, Any]) -> None:
        from runtime_agent import train

        shard = train.get_shard("source")
        seen = {
            "world": train.world_size(),
            "ids": [int(i) for i in shard["id"]],
            "pythonpath": os.environ.get("PYTHONPATH", ""),
            "probe_env": os.environ.get("PROBE_ENV"),
            "run_id": os.environ.get("ATOM_RUN_ID"),
            "token": os.environ.get("ATOM_RUN_TOKEN"),
        }
        rank = train.world_rank()
        (Path(config["probeDir"]) / f"rank-{rank}.json").write_text(json.dumps(seen))
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "probe.txt").write_text(str(len(shard)))
            train.report({"rows": float(len(shard))}, model_dir=tmp)


def probe_spec(tmp_path: Path, service_info: dict[str, Any]) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    tabular(101, seed=3).to_csv(data / "train.csv", index=False)
    probes = tmp_path / "probes"
    probes.mkdir(exist_ok=True)
    spec = {
        "runId": 77,
        "nodeName": "shard-probe",
        "operator": {
            "operatorName": "probe",
            "operatorRuntimeType": "TRAIN",
            "moduleName": __name__,
            "executeObject": "ShardProbe",
            "operatorConf": {"probeDir": str(probes)},
        },
        "serviceInfo": service_info,
        "envs": {"PROBE_ENV": "from-the-task"},
        "sources": [
            {
                "sourceName": "train",
                "sourceType": "source",
                "operateExecute": "train.csv",
                "connection": {"connectName": "files", "connectType": "FILE", "connectAddr": str(data)},
            }
        ],
    }
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_two_cpu_workers_from_the_service_info_each_train_on_their_shard(
    tmp_path: Path, ray_cluster: Any
) -> None:
    spec = probe_spec(tmp_path, {"siCpu": 1, "siNodeNum": 2, "siMemory": 256})
    proc = run_agent(
        ["run", "--spec", str(spec)],
        cwd=tmp_path,
        timeout=300,
        RAY_ADDRESS=ray_cluster.address,
        ATOM_RUN_TOKEN="not-for-workers",
        ATOM_DATA_DIR=str(tmp_path / "run" / "data"),
        ATOM_MODEL_DIR=str(tmp_path / "run" / "model"),
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert "ray train: 2 worker(s), CPU, source=101 rows" in proc.stderr  # auto: two workers -> ray
    assert "Failed to query Ray Train Controller actor state" not in proc.stderr

    seen = [json.loads((tmp_path / "probes" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [s["world"] for s in seen] == [2, 2]
    first, second = (s["ids"] for s in seen)
    assert first and second and not set(first) & set(second)
    assert sorted(first + second) == list(range(101))
    # the operator's code path, the task's envs and the run's ATOM_* reach the workers; tokens do not
    repo = str(Path(__file__).resolve().parents[2])
    assert all(repo in s["pythonpath"].split(os.pathsep) for s in seen)
    assert all(s["probe_env"] == "from-the-task" and s["run_id"] == "77" for s in seen)
    assert all(s["token"] is None for s in seen)
    # rank 0's checkpoint is the model
    assert (tmp_path / "run" / "model" / "probe.txt").read_text() == str(len(first))


def test_a_request_the_cluster_cannot_hold_fails_before_fit(tmp_path: Path, ray_cluster: Any) -> None:
    spec = probe_spec(tmp_path, {"siCpu": 4, "siGpu": 4, "siMemory": 0})
    proc = run_agent(
        ["run", "--spec", str(spec)],
        cwd=tmp_path,
        timeout=120,
        RAY_ADDRESS=ray_cluster.address,
        ATOM_DATA_DIR=str(tmp_path / "run" / "data"),
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    assert last.endswith(f"needs 4 GPU for 4 workers; the Ray cluster at {ray_cluster.address} has 0 GPU")
    assert "ray train:" not in proc.stderr  # no trainer was built, nothing waits for resources

    per_node = probe_spec(tmp_path, {"siCpu": 3, "siNodeNum": 1, "siMemory": 0})
    proc = run_agent(
        ["run", "--spec", str(per_node)],
        cwd=tmp_path,
        timeout=120,
        RAY_ADDRESS=ray_cluster.address,
        ATOM_TRAIN_EXECUTOR="ray",
        ATOM_DATA_DIR=str(tmp_path / "run" / "data"),
    )
    assert proc.returncode == 1
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith(f"needs 3 CPU for 1 worker; the Ray cluster at {ray_cluster.address} has 2 CPU")
    )
