"""`control.client.Client` on its own: it finds (or embeds) control as the CLI does, applies files,
YAML text and dicts with the CLI's checks, and `wait` gives up with `WaitTimeout` naming the state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from control.cli._embedded import probe
from control.cli._spec import SpecError
from control.cli.quickstart import make_dataset
from control.client import Client, WaitTimeout
from control.deploy import free_port
from tests.e2e.conftest import kill_processes_of

SPEC = """
experiments: [{experimentName: demo}]
exams: [{examName: nightly, experiment: demo}]
connections: [{connectName: files, connectType: FILE, connectAddr: .}]
sources:
  - {sourceName: train, connectionName: files, sourceType: source, operateExecute: train.csv, dataFormat: csv}
operators:
  - {operatorName: tabular, moduleName: runtime_agent.examples.train_example, executeObject: TrainExample,
     operatorEpoch: 200, operatorConf: {labelColumn: label}}
nodes:
  - {nodeName: train, exam: nightly, nodeStatus: EDIT_FINISH, relation: {operator: tabular, sources: [train]}}
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ATOM_HOME on a free port with no control on it, and no URL or token in the environment."""
    for name in ("ATOM_URL", "ATOM_TOKEN", "ATOM_SPACE", "ATOM_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATOM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATOM_PORT", str(free_port()))
    monkeypatch.setenv("ATOM_RECONCILE_INTERVAL", "0.2")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    make_dataset(tmp_path / "data", 100)
    monkeypatch.chdir(tmp_path / "data")
    try:
        yield tmp_path / "home"
    finally:
        kill_processes_of(tmp_path / "home")


def test_without_a_control_the_client_embeds_one_until_closed(home: Path) -> None:
    with Client(space="sdk") as atom:
        assert atom.embedded and probe(atom.url)
        created = atom.apply(SPEC)
        assert [(o.kind, o.action) for o in created][:2] == [("experiments", "created"), ("exams", "created")]
        spec = Path.cwd() / "spec.yaml"  # connectAddr `.`: the file's folder, as YAML text's is the cwd
        spec.write_text(SPEC, encoding="utf-8")
        assert {o.action for o in atom.apply(spec)} == {"unchanged"}
        assert {o.action for o in atom.apply("spec.yaml")} == {"unchanged"}
        doc = {"experiments": [{"experimentName": "demo", "description": "changed"}]}
        (out,) = atom.apply(doc)
        assert (out.kind, out.action, out.detail) == ("experiments", "updated", "description")
        assert atom.get("sdk", "experiments", "demo")["description"] == "changed"
        url = atom.url
    assert not probe(url)


def test_a_bad_spec_is_refused_with_its_path_and_nothing_is_written(home: Path) -> None:
    with Client(space="sdk") as atom:
        with pytest.raises(SpecError) as info:
            atom.apply(
                SPEC.replace(
                    "operatorEpoch: 200", "operatorEpoch: 200, searchConf: {space: {lr: 3}, metric: a}"
                )
            )
        assert info.value.problems == [
            "spec: operators[0] (tabular): field 'searchConf.space.lr': "
            'must be {"_type": ..., "_value": [...]}'
        ]
        assert atom.list_spaces() == []


def test_wait_gives_up_naming_the_state_and_the_run_goes_on(home: Path) -> None:
    with Client(space="sdk") as atom:
        atom.apply(SPEC)
        run = atom.start("train")  # a node: its run
        assert run.node_name == "train"
        with pytest.raises(WaitTimeout) as info:
            atom.wait(run, timeout=0)
        assert (
            str(info.value) == f"run {run.id} is still {info.value.state} after 0s: wait longer, or stop it"
        )
        assert info.value.state in ("queued", "pending", "running")
        atom.stop_run(run.id)
        assert str(atom.wait(run.id, timeout=60).state) == "stopped"
        exam_run = atom.start("nightly", kind="exam")
        assert exam_run.exam_name == "nightly"
        with pytest.raises(WaitTimeout):
            atom.wait(exam_run, timeout=0)
        atom.stop_exam_run(exam_run.id)
        assert str(atom.wait(exam_run, timeout=60).state) == "stopped"
