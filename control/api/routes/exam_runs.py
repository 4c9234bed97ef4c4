"""Exam runs for users: start one, list, describe (runs and edges), resume from its failed nodes, stop.

An exam run in a space the caller cannot read answers the 404 a missing one does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from control import audit, runs
from control import schemas as s
from control.access import Need, space_for
from control.api.deps import Caller, Orch, require_user
from control.api.params import MAX_ID, ObjectRef, SpaceName, SpaceQuery
from control.api.tenancy import exam_run_of
from control.pipeline import exam_runs, resume
from control.prepare import ReadyRun
from control.schemas.pipeline import ExamRunState
from control.schemas.runs import StopBody
from control.store import models as m
from control.store import repo, run_views

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_user)], tags=["exam runs"])
ExamRunId = Annotated[int, Path(ge=1, le=MAX_ID, description="an exam run id")]


def view(session: Session, er: m.ExamRun, *, with_runs: bool = True) -> s.ExamRunOut:
    out = s.ExamRunOut(
        id=er.id,
        exam_id=er.exam_id,
        exam_name=er.exam_name,
        space_id=er.space_id,
        state=ExamRunState(er.state),
        trigger=er.trigger,
        schedule_id=er.schedule_id,
        logical_date=er.logical_date,
        reason=er.reason,
        resumes=er.resumes or 0,
        created_at=er.created_at,
        finished_at=er.finished_at,
    )
    if with_runs:
        rows = exam_runs.runs_of(session=session, exam_run_id=er.id)
        out.runs = run_views.views(session=session, runs=rows)
        out.edges = edges_of(rows)
    return out


def edges_of(rows: Sequence[m.Runtime]) -> list[list[int]]:
    """`[from node, to node]` of the DAG the exam run follows (its runs' upstream runs)."""
    node_of = {r.id: r.node_id for r in rows}
    out: list[list[int]] = []
    for r in rows:
        for u in r.upstream_run_ids or []:
            a = node_of.get(u)
            if a is not None and r.node_id is not None:
                out.append([a, r.node_id])
    return out


@router.post("/spaces/{space}/exams/{name}/runs", response_model=s.ExamRunOut, status_code=201)
async def start_exam_run(
    space: SpaceName, name: ObjectRef, orch: Orch, who: Caller, body: s.ExamRunStart | None = Body(None)
) -> s.ExamRunOut:
    """Start the exam (by name or id): roots are dispatched now, the others as their upstream runs end."""
    start = body or s.ExamRunStart()

    def create(ses: Session) -> tuple[int, list[ReadyRun]]:
        sp = space_for(ses, who, space, Need.WRITE)
        exam = repo.find(session=ses, k=repo.KINDS["exams"], space_id=sp.id, ref=name)
        event = s.TaskEvent(
            task_id=exam.id, task_type="EXAM", envs=start.envs, run_parameter=start.run_parameter
        )
        er, made = exam_runs.launch_exam(session=ses, exam=exam, event=event, adapter=orch.place_run)
        audit.record(ses, who, "start", "exam-run", er.id, space_id=sp.id, exam=exam.exam_name)
        return er.id, orch.prepare_claimed(ses, [(run.id, token) for run, token in made if token is not None])

    er_id, ready = await orch.db(create)
    await orch.exams.dispatch(ready)
    return await orch.db(lambda ses: view(ses, exam_runs.get_exam_run(session=ses, exam_run_id=er_id)))


@router.get("/exam-runs", response_model=s.ExamRunPage)
def list_exam_runs(
    orch: Orch,
    who: Caller,
    space: SpaceQuery = None,
    exam_id: int | None = Query(None, alias="examId", ge=1, le=MAX_ID),
    state: ExamRunState | None = None,
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_ID),
) -> s.ExamRunPage:
    """The caller's exam runs, newest first (without their runs: GET one for those)."""
    with orch.store.transaction() as ses:
        q = select(m.ExamRun)
        if space is not None:
            q = q.where(m.ExamRun.space_id == space_for(ses, who, space).id)
        visible = who.space_ids(ses)
        if visible is not None:
            q = q.where(m.ExamRun.space_id.in_(sorted(visible)))
        if exam_id is not None:
            q = q.where(m.ExamRun.exam_id == exam_id)
        if state is not None:
            q = q.where(m.ExamRun.state == state.value)
        total = ses.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = ses.scalars(q.order_by(m.ExamRun.id.desc()).limit(limit).offset(offset))
        return s.ExamRunPage(items=[view(ses, er, with_runs=False) for er in rows], total=total)


@router.get("/exam-runs/{exam_run_id}", response_model=s.ExamRunOut)
def get_exam_run(exam_run_id: ExamRunId, orch: Orch, who: Caller) -> s.ExamRunOut:
    with orch.store.transaction() as ses:
        return view(ses, exam_run_of(ses, who, exam_run_id))


@router.post("/exam-runs/{exam_run_id}/resume", response_model=s.ExamRunOut)
async def resume_exam_run(exam_run_id: ExamRunId, orch: Orch, who: Caller) -> s.ExamRunOut:
    """Run a failed or stopped exam run again from its failed, stopped and skipped nodes (409 otherwise);
    succeeded nodes keep their artifacts, the others run the code as it is now."""

    def requeue(ses: Session) -> list[ReadyRun]:
        er = exam_run_of(ses, who, exam_run_id, Need.WRITE)
        ready = resume.resume(session=ses, exam_run=er, runs_dir=orch.settings.runs_dir)
        audit.record(ses, who, "resume", "exam-run", er.id, space_id=er.space_id)
        return orch.prepare_claimed(ses, ready)

    ready = await orch.db(requeue)
    await orch.exams.dispatch(ready)
    return await orch.db(lambda ses: view(ses, exam_run_of(ses, who, exam_run_id)))


@router.post("/exam-runs/{exam_run_id}/stop", response_model=s.ExamRunOut)
async def stop_exam_run(
    exam_run_id: ExamRunId, orch: Orch, who: Caller, body: StopBody | None = Body(None)
) -> s.ExamRunOut:
    """Stop every unfinished run of the exam run (their targets too)."""
    reason = str((body or {}).get("reason") or "stopped by user")

    def stop(ses: Session) -> list[tuple[str, str]]:
        er = exam_run_of(ses, who, exam_run_id, Need.WRITE)
        ids = exam_runs.stop_exam_run(session=ses, exam_run=er, reason=reason)
        audit.record(ses, who, "stop", "exam-run", er.id, space_id=er.space_id, reason=reason)
        out = []
        for run_id in ids:
            sched = runs.schedule_of(session=ses, run_id=run_id)
            if sched is not None and sched.external_id:
                out.append((runs.get_run(session=ses, run_id=run_id).adapter, sched.external_id))
        return out

    for adapter, external_id in await orch.db(stop):
        orch.spawn(orch.adapter(adapter).stop(external_id))
    return await orch.db(lambda ses: view(ses, exam_run_of(ses, who, exam_run_id)))
