"""`atom exam-runs [ID]` and `atom resume ID` against the real app and store: the list, one exam run
with each run's upstream nodes and skip reason, a resume, and a resume refused while it runs."""

from __future__ import annotations

from collections.abc import Callable

from control.secrets import token_hash
from control.settings import Settings
from control.store import models as m
from control.store.engine import Store

Atom = Callable[..., tuple[int, str, str]]
SKIP = "upstream train failed (trigger rule all_success)"


def failed_exam_run(settings: Settings) -> int:
    """Exam run `nightly`: prep succeeded, train failed, evaluate skipped (their adapter is not
    configured in this control, so a resumed run's dispatch fails at once with that reason)."""
    store = Store(settings.database_url)
    try:
        with store.transaction() as ses:
            space = m.Space(space_name="default")
            ses.add(space)
            ses.flush()
            er = m.ExamRun(
                space_id=space.id, exam_id=1, exam_name="nightly", state="failed", reason="failed: train"
            )
            ses.add(er)
            ses.flush()
            made: dict[str, int] = {}
            for name, state, reason, ups in (
                ("prep", "succeeded", "runningAutoFinish", []),
                ("train", "failed", "boom", ["prep"]),
                ("evaluate", "skipped", SKIP, ["train"]),
            ):
                run = m.Runtime(
                    space_id=space.id,
                    node_name=name,
                    operator_runtime_type="TRAIN",
                    adapter="unconfigured",
                    state=state,
                    reason=reason,
                    token_hash=token_hash(name),
                    spec={},
                    exam_id=1,
                    exam_run_id=er.id,
                    upstream_run_ids=[made[u] for u in ups],
                )
                ses.add(run)
                ses.flush()
                run.spec = {
                    "runId": run.id,
                    "nodeName": name,
                    "operator": {
                        "operatorName": "op",
                        "operatorRuntimeType": "TRAIN",
                        "moduleName": "runtime_agent.examples.train_example",
                        "executeObject": "TrainExample",
                    },
                }
                made[name] = run.id
            return er.id
    finally:
        store.dispose()


def mark_running(settings: Settings, exam_run_id: int) -> None:
    store = Store(settings.database_url)
    try:
        with store.transaction() as ses:
            er = ses.get(m.ExamRun, exam_run_id)
            assert er is not None
            er.state, er.finished_at = "running", None
    finally:
        store.dispose()


def test_list_show_and_resume(atom: Atom, control_settings: Settings) -> None:
    er = failed_exam_run(control_settings)
    code, out, _ = atom("exam-runs")
    assert code == 0 and "nightly" in out and "failed" in out and "failed: train" in out

    code, out, _ = atom("exam-runs", str(er))
    assert code == 0
    assert SKIP in out and "evaluate" in out
    evaluate = next(line for line in out.splitlines() if "evaluate" in line)
    assert "train" in evaluate and "skipped" in evaluate  # after train, and why it was skipped

    code, out, err = atom("resume", str(er))
    assert code == 0 and f"resumed exam run {er}" in out and "train, evaluate" in out
    assert "train could not start: attempt 2/2: dispatch adapter 'unconfigured' is not configured" in err
    code, out, _ = atom("exam-runs", str(er))
    assert "2/2" in out and "1/1" in out  # train and evaluate on their 2nd attempt, prep kept

    mark_running(control_settings, er)  # e.g. resumed by someone else a moment ago
    code, _, err = atom("resume", str(er))
    assert code == 1
    assert f"exam run {er} is running: only a failed or stopped exam run can be resumed" in err
    code, _, err = atom("resume", "nightly")
    assert code == 2 and "exam run id must be a number" in err
