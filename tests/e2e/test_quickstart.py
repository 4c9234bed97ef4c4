"""The main job, as a user runs it: `atom quickstart` in a fresh home, with real processes, Ray and HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from control.deploy import free_port
from tests.e2e.conftest import kill_processes_of

pytestmark = [pytest.mark.e2e, pytest.mark.ray, pytest.mark.slow]


def test_quickstart_trains_deploys_and_predicts(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ATOM_HOME": str(tmp_path / "home"),
        "ATOM_PORT": str(free_port()),
        "RAY_AUTH_MODE": "disabled",
        "COLUMNS": "120",
        "NO_COLOR": "1",
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "control.cli", "quickstart", "--rows", "600", "--epochs", "2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=480,
        )
    finally:  # the service outlives the quickstart's embedded control on purpose: not the test's
        kill_processes_of(tmp_path / "home")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "succeeded" in out and "right" in out
    right = next(line for line in out.splitlines() if " right" in line).split()
    assert int(right[0]) >= 4, out  # at least 4 of the 5 sample rows predicted correctly
    home = tmp_path / "home"
    assert list(home.glob("quickstart/predictions.csv")), "the sink file was not written"
    assert list(home.glob("quickstart/**/model.tar.gz")) or list(home.glob("**/model.tar.gz"))
