"""`atom-runtime run/dev` as real processes: SIGTERM stops a run; a REASONING run fetches its model."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tests.runtime_agent.conftest import agent_env, run_agent


def _files(base: Path) -> dict[str, str]:
    return {"connectName": "files", "connectType": "FILE", "connectAddr": str(base)}


def test_sigterm_reports_stopped_and_exits(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("x\n1\n")
    spec = {
        "runId": 3,
        "nodeName": "waits",
        "operator": {
            "operatorName": "w",
            "operatorRuntimeType": "PYTHON",
            "moduleName": "tests.runtime_agent.operators",
            "executeObject": "WaitForFile",
            "operatorConf": {"releaseFile": str(tmp_path / "never")},
        },
        "sources": [
            {
                "sourceName": "in",
                "sourceType": "source",
                "operateExecute": "in.csv",
                "connection": _files(tmp_path),
            }
        ],
    }
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(spec))
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime_agent", "run", "--spec", "task.yaml"],
        cwd=tmp_path,
        env=agent_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stderr, lines), daemon=True).start()
    seen: list[str] = []
    try:
        while not any("waiting for" in x for x in seen):  # the operator's hook is running
            seen.append(lines.get(timeout=60))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
    finally:
        proc.kill()
    while not lines.empty():
        seen.append(lines.get())
    log = "".join(seen)
    assert "state -> stopped (stopped by SIGTERM)" in log
    assert log.strip().splitlines()[-1] == "stopped: stopped by SIGTERM"


def test_dev_reasoning_run_fetches_the_model_and_scores(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "echo").mkdir(parents=True)
    (models / "echo" / "factor.txt").write_text("3")
    import tarfile

    with tarfile.open(models / "echo.tar.gz", "w:gz") as tar:
        tar.add(models / "echo" / "factor.txt", arcname="factor.txt")
    pd.DataFrame({"x": [1, 2, 3, 4, 5]}).to_parquet(tmp_path / "in.parquet")
    spec = {
        "runId": 11,
        "nodeName": "score",
        "operator": {
            "operatorName": "echo",
            "operatorRuntimeType": "REASONING",
            "moduleName": "tests.runtime_agent.operators",
            "executeObject": "EchoReasoning",
        },
        "sources": [
            {
                "sourceName": "in",
                "sourceType": "source",
                "operateExecute": "in.parquet",
                "operatorReadNum": 2,
                "connection": _files(tmp_path),
            },
            {
                "sourceName": "out",
                "sourceType": "sink",
                "operateExecute": "out/scored.csv",
                "sourceConf": {"writeMode": "replace"},
                "connection": _files(tmp_path),
            },
        ],
        "model": {"modelName": "echo", "modelAddress": "echo.tar.gz", "connection": _files(models)},
    }
    (tmp_path / "task.json").write_text(yaml.safe_dump(spec))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "scored.csv").write_text("y\n999\n")  # replaced, not appended to
    proc = run_agent(["dev", "--spec", "task.json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert pd.read_csv(tmp_path / "out" / "scored.csv")["y"].tolist() == [3, 6, 9, 12, 15]
    assert "DEBUG" in proc.stderr  # dev mode logs verbosely
    assert "fetched model echo.tar.gz" in proc.stderr
    assert not (tmp_path / ".atom" / "run-11" / "data" / "models").exists()  # nothing uploaded for REASONING


def _pump(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream or ():
        lines.put(line)
