"""A real agent run whose FILE source or sink climbs out of its connection's root fails with the
one-line reason, and reads or writes nothing there: the `../../../../etc/passwd` probe."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.runtime_agent.conftest import run_agent


@pytest.mark.parametrize(
    ("source", "sink", "stage", "refused"),
    [
        ("../../../../etc/passwd", "out.csv", "read source 'in'", "../../../../etc/passwd"),
        ("in.csv", "../escaped.csv", "", "../escaped.csv"),
    ],
)
def test_a_path_outside_the_root_fails_the_run_with_one_line(
    tmp_path: Path, source: str, sink: str, stage: str, refused: str
) -> None:
    root = tmp_path / "data" / "x"
    root.mkdir(parents=True)
    (root / "in.csv").write_text("a\n1\n2\n")
    files = {"connectName": "files", "connectType": "FILE", "connectAddr": str(root)}
    spec = {
        "runId": 13,
        "nodeName": "probe",
        "operator": {
            "operatorName": "probe",
            "operatorRuntimeType": "PYTHON",
            "moduleName": "tests.runtime_agent.operators",
            "executeObject": "Emits",
        },
        "sources": [
            {"sourceName": "in", "sourceType": "source", "operateExecute": source, "dataFormat": "csv",
             "connection": files},
            {"sourceName": "out", "sourceType": "sink", "operateExecute": sink, "dataFormat": "csv",
             "connection": files},
        ],
    }  # fmt: skip
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = run_agent(["run", "--spec", str(path)], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    reason = f"FILE path {refused!r} is outside the connection's root {str(root)!r}: use a path inside it"
    assert last.startswith("error: ") and last.endswith(reason), last
    if stage:
        assert last == f"error: failed in stage {stage}: {reason}"
    assert "root:x:0:0" not in proc.stderr + proc.stdout  # not one line of the file was read
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["x"]  # nothing written beside the root
