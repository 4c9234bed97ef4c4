"""`atom trials RUN` against the real app and store: the search's trials, best first and marked."""

from __future__ import annotations

import json
from collections.abc import Callable

from control.cli.trials import params_text
from control.secrets import token_hash
from control.settings import Settings
from control.store import models as m
from control.store.engine import Store
from control.store.pipeline_models import RunTrial

Atom = Callable[..., tuple[int, str, str]]


def searched_run(settings: Settings) -> int:
    """A run whose operator searched `lr` for the lowest loss, with three trials stored."""
    store = Store(settings.database_url)
    with store.transaction() as ses:
        space = m.Space(space_name="default")
        ses.add(space)
        ses.flush()
        search = {
            "space": {"lr": {"_type": "choice", "_value": [0.1, 0.01]}},
            "metric": "loss",
            "mode": "min",
        }
        run = m.Runtime(
            space_id=space.id,
            node_name="train",
            operator_runtime_type="TRAIN",
            state="succeeded",
            token_hash=token_hash("t"),
            spec={"operator": {"searchConf": search}},
        )
        ses.add(run)
        ses.flush()
        for trial_id, lr, state, score, best in (
            ("a_00000", 0.1, "succeeded", 0.25, False),
            ("a_00001", 0.01, "succeeded", 0.125, True),
            ("a_00002", 0.001, "stopped", 0.9, False),
        ):
            ses.add(
                RunTrial(
                    runtime_id=run.id,
                    trial_id=trial_id,
                    params={"lr": lr, "opt": {"_name": "sgd", "momentum": 0.9}},
                    state=state,
                    metrics={"loss": score},
                    history=[[1, score + 1], [2, score]],
                    score=score,
                    best=best,
                )
            )
        run_id = run.id
    store.engine.dispose()
    return run_id


def test_atom_trials_lists_the_best_first_and_marks_it(atom: Atom, control_settings: Settings) -> None:
    run_id = searched_run(control_settings)
    code, out, err = atom("trials", str(run_id))
    assert code == 0, err
    lines = [line.rstrip() for line in out.splitlines() if line.strip()]
    assert lines[0] == f"run {run_id}: 3 trial(s), loss (min)"
    rows = [line.split() for line in lines[2:]]
    assert rows[0][:2] == ["*", "a_00001"] and "succeeded" in rows[0] and rows[0][-2:] == ["0.125", "2"]
    assert [r[0] for r in rows[1:]] == ["a_00000", "a_00002"]  # unmarked, by loss
    assert "stopped" in rows[2]
    assert "lr=0.01 opt=sgd(momentum=0.9)" in lines[2]

    code, out, _ = atom("trials", str(run_id), "--json")
    assert code == 0
    data = json.loads(out)
    assert [t["trialId"] for t in data["items"]] == ["a_00001", "a_00000", "a_00002"]
    assert data["items"][0]["best"] is True


def test_atom_trials_of_a_missing_run_and_a_bad_id(atom: Atom) -> None:
    code, _, err = atom("trials", "999")
    assert code != 0 and "run 999" in err
    code, _, err = atom("trials", "abc")
    assert code == 2 and "run id must be a number" in err


def test_params_text() -> None:
    assert params_text({"lr": 0.000123456, "layers": 2, "act": "relu"}) == "lr=0.0001235 layers=2 act=relu"
    assert params_text({"o": {"_name": "adam"}}) == "o=adam"
