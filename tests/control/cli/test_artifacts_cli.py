"""`atom artifacts RUN` against the real app and store: a run's outputs as a table, or as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable

from control.pipeline import artifacts
from control.schemas.pipeline import ArtifactKind
from control.secrets import token_hash
from control.settings import Settings
from control.store import models as m
from control.store.engine import Store

Atom = Callable[..., tuple[int, str, str]]


def run_with_outputs(settings: Settings) -> tuple[int, int]:
    """A succeeded run that left a model version, metrics and a sink, and its cache-served copy."""
    store = Store(settings.database_url)
    with store.transaction() as ses:
        space = m.Space(space_name="default")
        ses.add(space)
        ses.flush()
        made = []
        for state in ("succeeded", "skipped"):
            run = m.Runtime(
                space_id=space.id,
                node_name="train",
                operator_runtime_type="TRAIN",
                state=state,
                token_hash=token_hash(state),
                spec={},
            )
            ses.add(run)
            ses.flush()
            made.append(run)
        first, cached = made
        value = {"modelName": "churn", "version": "3", "score": 0.91, "operatorResult": "CONTAIN_OPTIMAL"}
        artifacts.put(ses, first.id, "model", ArtifactKind.MODEL, uri="file:///m/3.tar.gz", value=value)
        artifacts.put(ses, first.id, "metrics", ArtifactKind.METRICS, value={"score": 0.91, "loss": 0.25})
        sink = {"connection": "files", "target": "out.csv", "rows": 120, "format": "csv"}
        artifacts.put(ses, first.id, "sink:out", ArtifactKind.DATASET, uri="FILE://files/out.csv", value=sink)
        artifacts.copy_outputs(session=ses, source_run_id=first.id, run=cached)
        ids = first.id, cached.id
    store.engine.dispose()
    return ids


def test_atom_artifacts_table_and_json(atom: Atom, control_settings: Settings) -> None:
    first, cached = run_with_outputs(control_settings)
    code, out, err = atom("artifacts", str(first))
    assert code == 0, err
    lines = [line.rstrip() for line in out.splitlines() if line.strip()]
    assert lines[0] == f"run {first} artifacts"
    model = next(line for line in lines if line.split()[0] == "model")
    assert "churn v3 score 0.91 (CONTAIN_OPTIMAL)" in model and "file:///m/3.tar.gz" in model
    assert "score=0.91, loss=0.25" in next(line for line in lines if line.split()[0] == "metrics")
    assert "120 rows to out.csv (files)" in next(line for line in lines if line.startswith("sink:out"))

    code, out, _ = atom("artifacts", str(cached), "--json")
    assert code == 0
    data = json.loads(out)
    assert [a["name"] for a in data] == ["model", "metrics", "sink:out"]
    assert {a["reusedFrom"] for a in data} == {first}


def test_atom_artifacts_of_a_missing_run_and_a_bad_id(atom: Atom) -> None:
    code, _, err = atom("artifacts", "999")
    assert code != 0 and "run 999 does not exist" in err
    code, _, err = atom("artifacts", "abc")
    assert code == 2 and "'abc' is not a run id" in err
