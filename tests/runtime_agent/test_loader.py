"""Operator loading: missing modules / classes / dependencies give a clear OperatorLoadError; CLI exits 1."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from connectors.errors import Permanent
from runtime_agent.errors import OperatorError, OperatorLoadError
from runtime_agent.loader import load_object, load_ref
from tests.runtime_agent.conftest import run_agent


def test_missing_module_names_it() -> None:
    with pytest.raises(OperatorLoadError) as info:
        load_object("no_such_pkg.train", "Model")
    message = str(info.value)
    assert "operator module 'no_such_pkg.train' not found" in message and "moduleName" in message
    assert isinstance(info.value, OperatorError) and isinstance(info.value, Permanent)


def test_missing_class_names_it_and_lists_the_classes() -> None:
    with pytest.raises(OperatorLoadError) as info:
        load_object("tests.runtime_agent.operators", "NoSuchClass")
    message = str(info.value)
    assert "has no executeObject 'NoSuchClass'" in message and "check executeObject" in message
    assert "CamelCase" in message


def test_missing_dependency_is_not_reported_as_a_missing_module() -> None:
    with pytest.raises(OperatorLoadError) as info:
        load_object("tests.runtime_agent.broken_dependency", "Model")
    assert "failed to import" in str(info.value) and "not_installed_package_xyz" in str(info.value)


def test_seed_module_path_is_an_alias() -> None:
    from runtime_agent.examples.train_example import TrainExample

    assert load_object("atom_runtime.example.train_example", "TrainExample") is TrainExample
    assert load_ref("runtime_agent.examples.train_example:TabularReasoning").__name__ == "TabularReasoning"
    with pytest.raises(OperatorLoadError, match="package.module:ClassName"):
        load_ref("no-colon")


def test_error_pickles_across_processes() -> None:
    import pickle

    err = OperatorLoadError("operator module 'x' not found", module_name="x")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is OperatorLoadError and str(again) == str(err)


def _spec_file(tmp_path: Path, module: str, cls: str) -> Path:
    (tmp_path / "data.csv").write_text("x\n1\n2\n")
    spec = {
        "runId": 7,
        "nodeName": "broken",
        "operator": {
            "operatorName": "broken",
            "operatorRuntimeType": "PYTHON",
            "moduleName": module,
            "executeObject": cls,
        },
        "sources": [
            {
                "sourceName": "in",
                "sourceType": "source",
                "operateExecute": "data.csv",
                "connection": {"connectName": "files", "connectType": "FILE", "connectPassword": "s3cr3t-pw"},
            },
        ],
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize(
    ("module", "cls", "reason"),
    [
        ("no_such_pkg.train", "Model", "operator module 'no_such_pkg.train' not found"),
        ("tests.runtime_agent.operators", "NoSuchClass", "has no executeObject 'NoSuchClass'"),
        ("tests.runtime_agent.operators", "Explodes", "ValueError: column 'x' has negative values"),
        ("tests.runtime_agent.operators", "NeedsArgs", "could not be created: TypeError"),
    ],
)
def test_cli_run_spec_exits_1_with_the_reason(tmp_path: Path, module: str, cls: str, reason: str) -> None:
    proc = run_agent(["run", "--spec", str(_spec_file(tmp_path, module, cls))], cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and reason in last
    assert "Traceback" in proc.stderr  # the traceback is in the log, not in the reason
    assert "s3cr3t-pw" not in proc.stderr and "s3cr3t-pw" not in proc.stdout


def test_cli_bad_spec_file(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("operator: {moduleName: x}\n")
    proc = run_agent(["run", "--spec", str(path)], cwd=tmp_path)
    assert proc.returncode == 1
    assert "error: spec file" in proc.stderr and "operator" in proc.stderr


def test_cli_run_without_control_or_spec_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_agent(["run", "--run-id", "3"], cwd=tmp_path)
    assert proc.returncode == 2 and "ATOM_CONTROL_URL" in proc.stderr
