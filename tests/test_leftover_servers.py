"""The end-of-run check for leaked serving processes fails a run that leaves one behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.leftover_servers import _is_serving

REPO = Path(__file__).resolve().parent.parent

LEAKY = """
import subprocess, sys

def test_leaves_a_server() -> None:
    subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "runtime_agent", "serve"],
        start_new_session=True,
    )
"""


def test_a_run_that_leaks_a_server_fails_and_the_server_is_killed(tmp_path: Path) -> None:
    (tmp_path / "test_leaky.py").write_text(LEAKY)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.leftover_servers", "-p", "no:cacheprovider",
         "-p", "no:randomly", str(tmp_path / "test_leaky.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert "serving processes left behind by the tests (killed now): 1" in done.stdout
    pid = int(done.stdout.split("  pid ", 1)[1].split(":", 1)[0])
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_what_counts_as_a_serving_process() -> None:
    assert _is_serving(["/usr/bin/python3", "-m", "runtime_agent", "serve", "--service-id", "3"])
    assert _is_serving(["/v/bin/python", "/v/bin/atom-runtime", "front", "--port", "9"])
    assert not _is_serving(["/v/bin/python", "/v/bin/atom-runtime", "run", "--run-id", "3"])
    assert not _is_serving(["/usr/bin/python3", "-m", "pytest", "tests/runtime_agent/test_serve.py"])
