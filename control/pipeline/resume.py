"""Resume: run a failed or stopped exam run again from the nodes that did not succeed.

Every run that failed, was stopped, or was skipped (not a cache hit) is queued again as its
next attempt; succeeded runs keep their artifacts and are not run again. The requeued runs'
specs are rebuilt when they are dispatched (`binding`), so a fixed operator is picked up. It is
all store state plus dispatch, so it works whatever adapter the runs use.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from control import retries
from control import schemas as s
from control.errors import Conflict
from control.pipeline import exam_runs, graph
from control.schemas.pipeline import ExamRunState
from control.states import RESUMABLE
from control.store import models as m


def resumable(run: m.Runtime) -> bool:
    if s.RunState(run.state) not in RESUMABLE:
        return False
    return not (run.state == s.RunState.SKIPPED.value and (run.reason or "").startswith(graph.CACHED_PREFIX))


def resume(*, session: Session, exam_run: m.ExamRun, runs_dir: Path | None = None) -> list[tuple[int, str]]:
    """Requeue the exam run's unsucceeded runs; returns `(run id, token)` of those to dispatch now.

    Raises:
        Conflict: the exam run is not failed or stopped (its state named).
    """
    if exam_run.state not in (ExamRunState.FAILED.value, ExamRunState.STOPPED.value):
        raise Conflict(
            f"exam run {exam_run.id} is {exam_run.state}: only a failed or stopped exam run can be resumed"
        )
    why = f"resume of exam run {exam_run.id}"
    all_runs = exam_runs.runs_of(session=session, exam_run_id=exam_run.id)
    by_id = {r.id: r for r in all_runs}
    again = [r for r in all_runs if resumable(r)]
    for run in again:
        _requeue(session=session, run=run, reason=why, runs_dir=runs_dir)
    ready: list[tuple[int, str]] = []
    for run in again:
        ups = [by_id.get(u) for u in run.upstream_run_ids or []]
        if all(u is not None and graph.Upstream(u.node_name, u.state, u.reason).succeeded for u in ups):
            ready.append((run.id, exam_runs.claim(session=session, run=run, reason=why)))
        else:
            names = ", ".join(u.node_name for u in ups if u is not None)
            run.reason = f"{why}: waiting for {names}"
    exam_run.state = ExamRunState.RUNNING.value
    exam_run.finished_at = None
    exam_run.resumes = (exam_run.resumes or 0) + 1
    exam_run.reason = f"resumed: {len(again)} run(s) again"
    session.flush()
    return ready


def _requeue(*, session: Session, run: m.Runtime, reason: str, runs_dir: Path | None) -> None:
    """Queue an ended run again as its next attempt, with a fresh dispatch record."""
    before = run.state
    retries.next_attempt(session, run, runs_dir)
    run.state = s.RunState.QUEUED.value
    run.reason = reason
    run.finished_at = None
    run.started_at = None
    session.add(m.RunTransition(runtime_id=run.id, from_state=before, to_state=run.state, reason=reason))
    session.add(m.Schedule(runtime_id=run.id, adapter=run.adapter))
    session.flush()
