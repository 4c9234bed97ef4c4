"""Runtime-agent test fixtures: separable synthetic tabular data and helpers to run real agent processes."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]


def tabular(n: int, *, seed: int = 0, classes: int = 3) -> pd.DataFrame:
    """`n` rows of well separated clusters: id, two features, an integer label."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [6.0, 6.0], [-6.0, 6.0], [6.0, -6.0]])[:classes]
    label = rng.integers(0, classes, n)
    x = centers[label] + rng.normal(scale=1.0, size=(n, 2))
    return pd.DataFrame({"id": np.arange(n), "f0": x[:, 0], "f1": x[:, 1], "label": label})


@pytest.fixture(autouse=True)
def temp_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Temp dirs the agent makes (AgentRunner work dirs, serve unpacks) land in the test's tmp_path."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture
def train_df() -> pd.DataFrame:
    return tabular(240, seed=1)


@pytest.fixture
def test_df() -> pd.DataFrame:
    return tabular(60, seed=2)


def agent_env(**extra: str) -> dict[str, str]:
    """Environment for an agent subprocess: the repo importable, Ray without auth."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATOM_") or k.startswith("ATOM_TEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("RAY_AUTH_MODE", "disabled")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_agent(
    args: list[str], *, cwd: Path, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `python -m runtime_agent ARGS` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "runtime_agent", *args],
        cwd=cwd,
        env=agent_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def trained_example(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """TrainExample trained once in-process (local executor): the AgentResult, model dir inside."""
    from runtime_agent.testing import AgentRunner

    workdir = tmp_path_factory.mktemp("trained")
    result = AgentRunner(
        "runtime_agent.examples.train_example:TrainExample",
        sources={"source": tabular(240, seed=1), "test_source": tabular(60, seed=2)},
        operator_conf={"labelColumn": "label", "hidden": 16, "lr": 0.05},
        epochs=4,
        operator_read_num=100,
        workdir=workdir,
    ).run()
    assert result.ok, result.reason
    return result


@pytest.fixture(params=["filters", "no filters"])
def filters(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both Pythons: with extraction filters (3.11.4+) and without (Debian bookworm's 3.11.2)."""
    if request.param == "no filters":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return str(request.param)
