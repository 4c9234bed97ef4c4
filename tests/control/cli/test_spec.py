"""`atom apply` spec parsing: validation errors name the file, the entry and the field; nothing is sent."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest

from control.cli._spec import SpecError, load_spec
from control.cli.main import main

REPO = Path(__file__).resolve().parents[3]

GOOD = """
space: team-a
connections:
  - {connectName: files, connectType: FILE, connectAddr: ./data}
sources:
  - {sourceName: train, connectionName: files, sourceType: source, operateExecute: train.csv, dataFormat: csv}
  - {sourceName: predictions, connectionName: files, sourceType: sink, operateExecute: out.csv}
operators:
  - operatorName: tabular
    operatorRuntimeType: train
    moduleName: runtime_agent.examples.train_example
    executeObject: TrainExample
    operatorEpoch: 5
    deployType: AUTO_DEPLOY
    operatorConf: {labelColumn: label}
models: [{modelName: tabular, connectionName: files}]
serviceInfos: [{siName: small, siCpu: 1, siMemory: 1024}]
nodes:
  - nodeName: train-tabular
    operatorRuntimeType: TRAIN
    nodeStatus: EDIT_FINISH
    relation:
      {operator: tabular, sources: [train, predictions], model: tabular, serviceInfo: small, next: null}
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec([write(tmp_path, text)], "default")
    return info.value.problems


def test_good_spec_loads_in_apply_order_with_file_paths_resolved(tmp_path: Path) -> None:
    spec = load_spec([write(tmp_path, GOOD)], "default")
    assert [(e.kind, e.name) for e in spec.entities] == [
        ("connections", "files"),
        ("sources", "train"),
        ("sources", "predictions"),
        ("operators", "tabular"),
        ("models", "tabular"),
        ("service-infos", "small"),
        ("nodes", "train-tabular"),
    ]
    assert spec.spaces == ["team-a"]
    conn = spec.of("connections")[0]
    assert conn.body["connectAddr"] == str((tmp_path / "data").resolve())
    op = spec.of("operators")[0]
    assert op.body["operatorRuntimeType"] == "TRAIN"  # any casing in YAML, canonical on the wire
    node = spec.of("nodes")[0]
    assert node.relation is not None and node.relation.sources == ["train", "predictions"]
    assert node.node_status is not None and node.node_status.value == "EDIT_FINISH"
    assert "nodeStatus" not in node.compare
    assert ("operators", "tabular") in node.references()


def test_space_defaults_to_the_command_line_one(tmp_path: Path) -> None:
    spec = load_spec([write(tmp_path, "serviceInfos: [{siName: small}]")], "from-flag")
    assert spec.spaces == ["from-flag"]


def test_packaged_quickstart_spec_is_the_example(tmp_path: Path) -> None:
    packaged = REPO / "control" / "cli" / "quickstart.yaml"
    example = REPO / "examples" / "quickstart.yaml"
    assert packaged.read_text() == example.read_text()
    spec = load_spec([example], "default")
    assert {e.kind for e in spec.entities} == {
        "connections", "sources", "operators", "models", "service-infos", "nodes"
    }  # fmt: skip
    assert spec.of("connections")[0].body["connectAddr"] == str(example.parent.resolve())


def test_unknown_field_names_file_entry_and_field(tmp_path: Path) -> None:
    text = """
    operators:
      - {operatorName: tabular, moduleName: m, executeObject: O, epochs: 5}
    """
    assert problems(tmp_path, text) == ["spec.yaml: operators[0] (tabular): unknown field 'epochs'"]


def test_unknown_field_suggests_the_close_one(tmp_path: Path) -> None:
    text = "connections: [{connectName: files, connectAdr: ./data}]"
    assert problems(tmp_path, text) == [
        "spec.yaml: connections[0] (files): unknown field 'connectAdr' (did you mean 'connectAddr'?)"
    ]


def test_unknown_section_is_refused_with_the_valid_ones(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "widgets: [{name: x}]")
    assert problem.startswith("spec.yaml: unknown section 'widgets': valid sections are space, connections")


def test_relation_fields_are_checked(tmp_path: Path) -> None:
    text = """
    nodes:
      - nodeName: n1
        relation: {sources: [a], operatr: x}
    """
    assert sorted(problems(tmp_path, text)) == [
        "spec.yaml: nodes[0] (n1): missing field 'relation.operator'",
        "spec.yaml: nodes[0] (n1): unknown field 'relation.operatr' (did you mean 'operator'?)",
    ]


def test_bad_values_name_the_field_and_every_problem_is_reported(tmp_path: Path) -> None:
    text = """
    serviceInfos:
      - {siName: small, siCpu: -1}
    nodes:
      - {nodeName: Train_Tabular}
      - just-a-string
    """
    found = problems(tmp_path, text)
    assert len(found) == 3
    assert found[0].startswith("spec.yaml: serviceInfos[0] (small): field 'siCpu': Input should be greater")
    assert found[1].startswith("spec.yaml: nodes[0] (Train_Tabular): field 'nodeName'")
    assert "not a valid Kubernetes name" in found[1]
    assert found[2] == "spec.yaml: nodes[1]: expected a mapping, got str"


def test_duplicates_across_files_are_refused(tmp_path: Path) -> None:
    a = write(tmp_path, "serviceInfos: [{siName: small}]", "a.yaml")
    b = write(tmp_path, "serviceInfos: [{siName: small, siCpu: 2}]", "b.yaml")
    with pytest.raises(SpecError) as info:
        load_spec([a, b], "default")
    assert info.value.problems == [
        "b.yaml: serviceInfos[0] (small): 'small' is also defined at a.yaml: serviceInfos[0] (small)"
    ]


def test_yaml_errors_and_missing_files(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "nodes: [\n  {nodeName: a\n")
    assert problem.startswith("spec.yaml: line ") and "not valid YAML" in problem
    with pytest.raises(SpecError, match="no such file"):
        load_spec([tmp_path / "nope.yaml"], "default")
    assert problems(tmp_path, "") == ["spec.yaml: the file is empty"]


def test_cli_refuses_a_bad_spec_before_reaching_control(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path, "operators:\n  - {operatorName: tabular, moduleName: m, executeObject: O, epochs: 5}\n"
    )

    def no_server(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"control was called: {request.url}")

    code = main(["apply", "-f", str(path)], transport=httpx.MockTransport(no_server))
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err == "error: spec.yaml: operators[0] (tabular): unknown field 'epochs'\n"
