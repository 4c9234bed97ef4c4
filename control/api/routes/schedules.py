"""Cron schedules of exams: `/api/v1/exams/{examId}/schedule` (get, put, delete),
`/api/v1/exams/{examId}/backfill`, and `/api/v1/schedules` (those of the caller's spaces).

An exam in a space the caller cannot read answers 404, as a missing one does; setting, deleting
and backfilling need write access there. A node is scheduled as a one-node exam.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from control import audit
from control.access import Need, space_for
from control.api.deps import Caller, Orch, require_user
from control.api.params import MAX_ID, SpaceQuery
from control.api.tenancy import exam_of
from control.pipeline import schedule_store
from control.pipeline.scheduler import Scheduler
from control.schemas.schedules import BackfillIn, BackfillOut, ExamRunBrief, ScheduleIn, ScheduleOut
from control.store import models as m
from control.store.models import utcnow

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_user)], tags=["schedules"])

ExamId = Annotated[int, Path(ge=1, le=MAX_ID, description="an exam id")]


def scheduler_of(request: Request) -> Scheduler | None:
    reconciler = getattr(request.app.state, "reconciler", None)
    found = getattr(reconciler, "schedules", None)
    return found if isinstance(found, Scheduler) else None


@router.get("/schedules", response_model=list[ScheduleOut])
def list_schedules(orch: Orch, who: Caller, space: SpaceQuery = None) -> list[dict[str, Any]]:
    """Schedules of the spaces the caller can read (or of `space`), with their next fire time."""
    with orch.store.transaction() as ses:
        ids = {space_for(ses, who, space).id} if space is not None else who.space_ids(ses)
        return [v.wire() for v in schedule_store.list_schedules(ses, ids)]


@router.get("/exams/{exam_id}/schedule", response_model=ScheduleOut)
def get_schedule(exam_id: ExamId, orch: Orch, who: Caller) -> dict[str, Any]:
    with orch.store.transaction() as ses:
        exam = exam_of(ses, who, exam_id)
        return schedule_store.view(ses, schedule_store.schedule_of(ses, exam), exam=exam).wire()


@router.put("/exams/{exam_id}/schedule", response_model=ScheduleOut)
def put_schedule(
    exam_id: ExamId, body: ScheduleIn, orch: Orch, who: Caller, request: Request, response: Response
) -> dict[str, Any]:
    """Set the exam's schedule; a bad cron or time zone is refused with its field named, nothing stored."""
    sched = scheduler_of(request)
    now = sched.clock() if sched is not None else utcnow()
    with orch.store.transaction() as ses:
        exam = exam_of(ses, who, exam_id, Need.WRITE)
        row, created = schedule_store.put_schedule(ses, exam, body, now=now)
        audit.record(
            ses,
            who,
            "create" if created else "change",
            "schedule",
            exam.exam_name,
            space_id=exam.space_id,
            cron=row.cron,
            timezone=row.timezone,
            concurrency=row.concurrency,
            enabled=row.enabled,
        )
        response.status_code = 201 if created else 200
        return schedule_store.view(ses, row, exam=exam).wire()


@router.delete("/exams/{exam_id}/schedule", status_code=204)
def delete_schedule(exam_id: ExamId, orch: Orch, who: Caller) -> Response:
    """Delete the schedule; its queued exam runs are stopped, running ones go on."""
    with orch.store.transaction() as ses:
        exam = exam_of(ses, who, exam_id, Need.WRITE)
        schedule_store.delete_schedule(ses, exam)
        audit.record(ses, who, "delete", "schedule", exam.exam_name, space_id=exam.space_id)
    return Response(status_code=204)


@router.post("/exams/{exam_id}/backfill", status_code=201, response_model=BackfillOut)
async def backfill(
    exam_id: ExamId, body: BackfillIn, orch: Orch, who: Caller, request: Request
) -> dict[str, Any]:
    """An exam run per logical date of the schedule in [from, to] that has none yet, run one after
    another (oldest first); running it again creates nothing more."""

    def create(ses: Session) -> BackfillOut:
        exam = exam_of(ses, who, exam_id, Need.WRITE)
        out = schedule_store.backfill(ses, exam, body)
        first = out.created[0].logical_date if out.created else None
        audit.record(
            ses,
            who,
            "backfill",
            "schedule",
            exam.exam_name,
            space_id=exam.space_id,
            runs=len(out.created),
            first=str(first),
        )
        return out

    out = await orch.db(create)
    sched = scheduler_of(request)
    if sched is not None and out.created:
        await sched.apply(await sched.start_queued())

        def states(ses: Session) -> list[ExamRunBrief]:
            row = ses.scalar(select(m.ExamSchedule).where(m.ExamSchedule.exam_id == exam_id))
            dates = [c.logical_date for c in out.created]
            if row is None:
                return out.created
            found = ses.scalars(
                select(m.ExamRun).where(m.ExamRun.schedule_id == row.id, m.ExamRun.logical_date.in_(dates))
            )
            now = {er.logical_date: er for er in found}
            return [
                ExamRunBrief.model_validate(now[d], from_attributes=True) if d in now else c
                for d, c in zip(dates, out.created, strict=True)
            ]

        out.created = await orch.db(states)
    return out.wire()
