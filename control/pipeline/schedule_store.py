"""Schedules in the store: set, view, list, delete, and backfill an exam's schedule.

Every function takes a session inside the caller's transaction; none dispatches (a backfill's
first exam run is started by `Scheduler.start_queued` after the commit). A bare end date (of a
schedule or a backfill) includes that whole day; a bare start date is that day's midnight, both in
the schedule's time zone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from control.errors import NotFound
from control.pipeline.schedules import Cron, backfill_dates, check_window, parse_cron, parse_zone, to_utc
from control.schemas.pipeline import ConcurrencyPolicy, ExamRunState
from control.schemas.schedules import BackfillIn, BackfillOut, ExamRunBrief, ScheduleIn, ScheduleOut
from control.store import models as m

ACTOR = "scheduler"
"""Who skipped fires in the audit trail (the schedule's `lastSkip` reads them back)."""


def cron_of(row: m.ExamSchedule) -> Cron:
    return Cron.of(row.cron, row.timezone, row.start_at, row.end_at)


def queued_count(session: Session, schedule_id: int) -> int:
    found = session.scalar(
        select(func.count(m.ExamRun.id)).where(
            m.ExamRun.schedule_id == schedule_id, m.ExamRun.state == ExamRunState.QUEUED.value
        )
    )
    return int(found or 0)


def queue(
    session: Session, *, exam: m.Exam, row: m.ExamSchedule, logical_date: datetime, trigger: str
) -> int:
    """A queued exam run for `logical_date`: it starts when no exam run of the exam runs."""
    er = m.ExamRun(
        space_id=exam.space_id,
        exam_id=exam.id,
        exam_name=exam.exam_name,
        state=ExamRunState.QUEUED.value,
        trigger=trigger,
        schedule_id=row.id,
        logical_date=logical_date,
        reason="waiting for the previous exam run to end",
    )
    session.add(er)
    session.flush()
    return er.id


def end_utc(value: date | datetime | None, zone: ZoneInfo, *, field: str = "end") -> datetime | None:
    """An end as naive UTC: a bare date includes its whole day."""
    if value is None or isinstance(value, datetime):
        return to_utc(value, zone, field=field)
    after = to_utc(value + timedelta(days=1) if value < date.max else value, zone, field=field)
    assert after is not None
    return after - timedelta(microseconds=1)


def schedule_of(session: Session, exam: m.Exam) -> m.ExamSchedule:
    row = session.scalar(select(m.ExamSchedule).where(m.ExamSchedule.exam_id == exam.id))
    if row is None:
        raise NotFound(
            f"exam {exam.exam_name!r} has no schedule: set one with `atom schedule {exam.exam_name}`"
        )
    return row


def put_schedule(
    session: Session, exam: m.Exam, body: ScheduleIn, *, now: datetime
) -> tuple[m.ExamSchedule, bool]:
    """Create or replace the exam's schedule; returns (row, created).

    Its next fire time is the first one from now on (a changed or re-enabled schedule does not fire
    the times it missed: `backfill` runs those); an unchanged timing keeps its next fire time.

    Raises:
        InvalidSpec: a bad cron or time zone, or an end before the start (the field named).
    """
    expr = parse_cron(body.cron)
    zone = parse_zone(body.timezone)
    start, end = to_utc(body.start, zone, field="start"), end_utc(body.end, zone, field="end")
    check_window(start, end)
    row = session.scalar(select(m.ExamSchedule).where(m.ExamSchedule.exam_id == exam.id))
    created = row is None
    if row is None:
        row = m.ExamSchedule(space_id=exam.space_id, exam_id=exam.id, cron=expr)
        session.add(row)
    timing = (expr, body.timezone, start, end)
    same = not created and (row.cron, row.timezone, row.start_at, row.end_at) == timing and row.enabled
    row.cron, row.timezone, row.start_at, row.end_at = timing
    row.concurrency = ConcurrencyPolicy(body.concurrency).value
    row.enabled = body.enabled
    if not body.enabled:
        row.next_fire_at = None
    elif not same or row.next_fire_at is None:
        row.next_fire_at = Cron(expr, zone, start, end).next_after(now, inclusive=True)
    session.flush()
    return row, created


def delete_schedule(session: Session, exam: m.Exam) -> None:
    """Delete the exam's schedule; its queued exam runs are stopped (running ones go on)."""
    row = schedule_of(session, exam)
    for er in session.scalars(
        select(m.ExamRun).where(m.ExamRun.schedule_id == row.id, m.ExamRun.state == ExamRunState.QUEUED.value)
    ):
        er.state, er.reason, er.finished_at = (
            ExamRunState.STOPPED.value,
            "its schedule was deleted",
            m.utcnow(),
        )
    session.delete(row)
    session.flush()


def last_skip(session: Session, row: m.ExamSchedule, exam_name: str) -> str | None:
    """`<logical date>: <why>` of the schedule's latest skipped fire."""
    events = session.scalars(
        select(m.AuditEvent)
        .where(
            m.AuditEvent.actor == ACTOR,
            m.AuditEvent.action == "skip",
            m.AuditEvent.kind == "schedule",
            m.AuditEvent.space_id == row.space_id,
            m.AuditEvent.name == exam_name[:255],
        )
        .order_by(m.AuditEvent.id.desc())
        .limit(20)
    )
    for ev in events:
        detail = ev.detail or {}
        if detail.get("scheduleId") == row.id:
            return f"{detail.get('logicalDate', '')}: {detail.get('reason', '')}"
    return None


def view(session: Session, row: m.ExamSchedule, *, exam: m.Exam | None = None) -> ScheduleOut:
    exam = exam or session.get(m.Exam, row.exam_id)
    space = session.get(m.Space, row.space_id)
    exam_name = exam.exam_name if exam else ""
    last = session.scalar(
        select(m.ExamRun)
        .where(m.ExamRun.schedule_id == row.id, m.ExamRun.state != ExamRunState.QUEUED.value)
        .order_by(m.ExamRun.id.desc())
        .limit(1)
    )
    return ScheduleOut(
        id=row.id,
        space=space.space_name if space else "",
        exam_id=row.exam_id,
        exam_name=exam_name,
        cron=row.cron,
        timezone=row.timezone,
        start_at=row.start_at,
        end_at=row.end_at,
        concurrency=ConcurrencyPolicy(row.concurrency),
        enabled=row.enabled,
        next_fire_at=row.next_fire_at,
        last_fire_at=row.last_fire_at,
        last_run_id=last.id if last else None,
        last_run_state=last.state if last else None,
        last_skip=last_skip(session, row, exam_name),
        queued=queued_count(session, row.id),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def list_schedules(session: Session, space_ids: Iterable[int] | None) -> list[ScheduleOut]:
    """Schedules of the given spaces (None: all), by space then exam name."""
    stmt = select(m.ExamSchedule, m.Exam).join(m.Exam, m.Exam.id == m.ExamSchedule.exam_id)
    if space_ids is not None:
        stmt = stmt.where(m.ExamSchedule.space_id.in_(sorted(space_ids)))
    rows = session.execute(stmt.order_by(m.ExamSchedule.space_id, m.Exam.exam_name)).all()
    return [view(session, row, exam=exam) for row, exam in rows]


def backfill(session: Session, exam: m.Exam, body: BackfillIn) -> BackfillOut:
    """A queued exam run (trigger backfill) per logical date in [from, to] that has none yet.

    They run one after another, oldest first, whatever the schedule's concurrency policy (two
    exam runs of one exam cannot share its nodes); a running exam run is never stopped for them.

    Raises:
        NotFound: the exam has no schedule.
        InvalidSpec: `to` before `from`, or more than `BACKFILL_MAX` dates.
    """
    row = schedule_of(session, exam)
    cron = cron_of(row)
    first, last = to_utc(body.start, cron.zone, field="from"), end_utc(body.end, cron.zone, field="to")
    assert first is not None and last is not None
    dates = backfill_dates(cron, first, last)
    if not dates:
        return BackfillOut(created=[], existing=0)
    have = set(
        session.scalars(
            select(m.ExamRun.logical_date).where(
                m.ExamRun.schedule_id == row.id, m.ExamRun.logical_date.in_(dates)
            )
        )
    )
    made = [
        session.get(m.ExamRun, queue(session, exam=exam, row=row, logical_date=d, trigger="backfill"))
        for d in dates
        if d not in have
    ]
    return BackfillOut(
        created=[
            ExamRunBrief(
                id=er.id, logical_date=er.logical_date, state=er.state, trigger=er.trigger, reason=er.reason
            )
            for er in made
            if er is not None
        ],
        existing=len(dates) - len(made),
    )
