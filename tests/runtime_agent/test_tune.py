"""Hyper-parameter search with Ray Tune on the suite's shared Ray head: trials report per epoch, ASHA
stops the lagging ones, the best trial's model is the version the run registers."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from control.schemas import RunState
from runtime_agent.testing import AgentRunner
from tests.runtime_agent.conftest import REPO
from tests.runtime_agent.tune_operators import LinearByGradientDescent, RaisesForSomeParams

pytestmark = [pytest.mark.ray, pytest.mark.slow]

LRS = [0.5, 0.2, 0.02, 0.002]
"""Grid order: the two best start first, so the two worst reach ASHA's first rung behind them."""


@pytest.fixture
def on_shared_ray(ray_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The agent (in this process) connects to the shared head; trial workers import the repo."""
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    return str(ray_cluster.address)


def line(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "y": 3.0 * x + 1.0 + rng.normal(scale=0.01, size=n)})


def archive_files(address: str) -> dict[str, bytes]:
    archive = Path(address.removeprefix("file://"))
    with tarfile.open(fileobj=io.BytesIO(archive.read_bytes())) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_asha_search_registers_the_best_trials_model(tmp_path: Path, on_shared_ray: str) -> None:
    result = AgentRunner(
        LinearByGradientDescent,
        sources={"source": line()},
        operator_conf={"lr": 1.0, "stepsPerEpoch": 3},
        epochs=4,
        workdir=tmp_path,
        search_conf={
            "space": {"lr": {"_type": "choice", "_value": LRS}},
            "metric": "loss",
            "mode": "min",
            "trials": 4,
            "concurrency": 2,
            "scheduler": "asha",
            "gracePeriod": 1,
            "algorithm": "grid",
        },
    ).run()
    assert result.ok, result.reason

    trials = result.trials
    assert len(trials) == 4
    by_lr = {t.params["lr"]: t for t in trials.values()}
    assert sorted(by_lr) == sorted(LRS)
    [best] = [t for t in trials.values() if t.best]
    assert best.params == {"lr": 0.5}
    assert best.state == "succeeded"
    assert [step for step, _ in best.history] == [1, 2, 3, 4]  # one point per report
    assert best.score == best.history[-1][1] == best.metrics["loss"]
    scored = [t.score for t in trials.values() if t.score is not None]
    assert best.score == min(scored)
    # the two worst lag the first two at every epoch: ASHA stops them at its first rung
    for lr in (0.02, 0.002):
        assert by_lr[lr].state == "stopped"
        assert len(by_lr[lr].history) < 4
        assert by_lr[lr].score is not None and by_lr[lr].score > best.score

    # the registered version is the best trial's model, with its final metrics and params
    [version] = result.model_versions
    files = archive_files(version.model_address)
    assert list(files) == ["linear.json"]
    model = json.loads(files["linear.json"])
    assert model["lr"] == 0.5 and model["w"] == pytest.approx(3.0, abs=0.1)
    assert version.metrics["loss"] == best.score
    assert version.metrics["param.lr"] == 0.5
    assert version.model_score == pytest.approx(best.metrics["score"])
    # the run's metric curve is the best trial's
    assert [values["loss"] for _, values in result.metrics] == [value for _, value in best.history]
    assert result.ctx is not None and result.ctx.operator_conf["lr"] == 0.5


def test_failed_trials_do_not_fail_the_search_until_all_fail(tmp_path: Path, on_shared_ray: str) -> None:
    search = {
        "space": {"lr": {"_type": "choice", "_value": [0.1, 0.9]}},
        "metric": "score",
        "mode": "max",
        "trials": 2,
        "concurrency": 2,
        "algorithm": "grid",
    }
    some = AgentRunner(
        RaisesForSomeParams,
        sources={"source": line(10)},
        operator_conf={"failAbove": 0.5},
        workdir=tmp_path / "some",
        search_conf=search,
    ).run()
    assert some.ok, some.reason
    states = {t.params["lr"]: (t.state, t.best) for t in some.trials.values()}
    assert states == {0.1: ("succeeded", True), 0.9: ("failed", False)}
    [version] = some.model_versions
    assert archive_files(version.model_address) == {"lr.txt": b"0.1"}

    every = AgentRunner(
        RaisesForSomeParams,
        sources={"source": line(10)},
        operator_conf={"failAbove": 0.0},
        workdir=tmp_path / "every",
        search_conf={**search, "space": {"lr": {"_type": "choice", "_value": [0.9]}}, "trials": 1},
    ).run()
    assert every.state == RunState.FAILED
    assert "no trial of 1 finished; first error: FloatingPointError: lr 0.9 diverged" in every.reason
    assert {t.state for t in every.trials.values()} == {"failed"}
    assert every.model_versions == []
