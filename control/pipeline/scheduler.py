"""The scheduler tick: fires due schedules in the store and starts queued exam runs.

Each reconcile pass calls `Scheduler.tick`. A due schedule is handled in one transaction: its
logical dates up to now are fired by its concurrency policy (`schedules.plan`) and its
`next_fire_at` moves past now in the same commit, so a crash leaves either both or neither. An
exam run's `UNIQUE(schedule_id, logical_date)` makes a fire happen once even when two controls
tick the same schedule: the loser's transaction fails and its next pass finds the date fired.
Skipped fires are kept in the audit trail (actor `scheduler`, action `skip`), which the schedule's
view reads back as `lastSkip`.

Queued exam runs (policy queue, backfills) start oldest logical date first, one at a time per
exam, once no exam run of the exam is running. Runs to dispatch come back from the store work;
the caller dispatches them after the commit.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from control import audit, runs
from control import schemas as s
from control.errors import Conflict, ControlError
from control.launch import Placer
from control.pipeline import exam_runs
from control.pipeline.schedule_store import ACTOR, cron_of, queue, queued_count
from control.pipeline.schedules import Action, due, plan
from control.schemas.pipeline import ConcurrencyPolicy, ExamRunState
from control.store import models as m
from control.store.models import utcnow

if TYPE_CHECKING:
    from control.orchestrator import Orchestrator

logger = logging.getLogger(__name__)

GOING = (ExamRunState.RUNNING.value,)
ACTIVE_RUN = (s.RunState.QUEUED.value, s.RunState.PENDING.value, s.RunState.RUNNING.value)


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class Outcome:
    """What one piece of store work decided; `dispatch` and `stop` are done after its commit."""

    dispatch: list[tuple[int, str]] = field(default_factory=list)
    stop: list[tuple[str, str]] = field(default_factory=list)
    """(adapter, external id) of runs a replace stopped."""
    launched: list[int] = field(default_factory=list)
    """Exam run ids started."""
    queued: list[int] = field(default_factory=list)
    skipped: list[datetime] = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        self.dispatch += other.dispatch
        self.stop += other.stop
        self.launched += other.launched
        self.queued += other.queued
        self.skipped += other.skipped


class LaunchRefused(ControlError):
    """launch_exam refused a fire (nodes busy outside the schedule, a broken exam): the transaction
    is rolled back and the fire is recorded as skipped in a fresh one."""

    def __init__(self, logical_date: datetime, exc: ControlError) -> None:
        super().__init__(str(exc))
        self.logical_date = logical_date
        self.busy = isinstance(exc, Conflict)
        self.exam_run_id: int | None = None
        """The queued exam run it was to start (`start_queued`)."""
        self.exam_id: int | None = None


def note_skip(session: Session, row: m.ExamSchedule, exam_name: str, when: str, reason: str) -> None:
    """Keep why a fire was skipped (the schedule's `lastSkip`)."""
    logger.info("schedule of exam %s: %s skipped: %s", exam_name, when, reason)
    audit.record(
        session,
        ACTOR,
        "skip",
        "schedule",
        exam_name,
        space_id=row.space_id,
        scheduleId=row.id,
        logicalDate=when,
        reason=reason,
    )


def going(session: Session, exam_id: int) -> list[m.ExamRun]:
    """The exam's running exam runs, after settling those whose runs all ended."""
    rows = list(
        session.scalars(
            select(m.ExamRun)
            .where(m.ExamRun.exam_id == exam_id, m.ExamRun.state.in_(GOING))
            .order_by(m.ExamRun.id)
        )
    )
    if rows:
        exam_runs.settle(session=session, exam_run_ids=[r.id for r in rows])
    return [r for r in rows if r.state in GOING]


def nodes_busy(session: Session, exam_id: int) -> bool:
    """A node of the exam runs outside any exam run (started alone)."""
    return (
        session.scalar(
            select(m.Runtime.id)
            .join(m.Node, m.Node.id == m.Runtime.node_id)
            .where(m.Node.exam_id == exam_id, m.Runtime.state.in_(ACTIVE_RUN))
            .limit(1)
        )
        is not None
    )


def launch(
    session: Session,
    *,
    exam: m.Exam,
    row: m.ExamSchedule,
    logical_date: datetime,
    trigger: str,
    placer: str | Placer,
    queued: m.ExamRun | None = None,
) -> Outcome:
    """Start an exam run for `logical_date` (its runs get `logicalDate` in runParameter and
    ATOM_LOGICAL_DATE), or start the `queued` one; raises LaunchRefused when launch_exam refuses."""
    event = s.TaskEvent(task_id=exam.id, task_type="EXAM", run_parameter={"logicalDate": iso(logical_date)})
    try:
        exam_run, made = exam_runs.launch_exam(
            session=session,
            exam=exam,
            event=event,
            adapter=placer,
            trigger=trigger,
            schedule_id=row.id,
            logical_date=logical_date,
            queued=queued,
        )
    except ControlError as exc:
        raise LaunchRefused(logical_date, exc) from exc
    session.flush()
    return Outcome(dispatch=[(r.id, t) for r, t in made if t is not None], launched=[exam_run.id])


def stop_going(session: Session, previous: list[m.ExamRun], reason: str) -> Outcome:
    out = Outcome()
    for er in previous:
        for run_id in exam_runs.stop_exam_run(session=session, exam_run=er, reason=reason):
            sched = runs.schedule_of(session=session, run_id=run_id)
            run = session.get(m.Runtime, run_id)
            if sched is not None and sched.external_id and run is not None:
                out.stop.append((run.adapter, sched.external_id))
    return out


def fire(
    session: Session,
    *,
    schedule_id: int,
    now: datetime,
    placer: str | Placer,
    catchup_max: int,
    refused: dict[datetime, str] | None = None,
) -> Outcome:
    """Fire one schedule's due logical dates by its policy and move `next_fire_at` past `now`.

    Args:
        refused: logical dates launch_exam refused in an earlier try of this transaction, with why:
            they are recorded as skipped.
    """
    refused = refused or {}
    out = Outcome()
    row = session.get(m.ExamSchedule, schedule_id, with_for_update=True)
    if row is None or not row.enabled or row.next_fire_at is None or row.next_fire_at > now:
        return out  # another control moved it on, or it changed
    exam = session.get(m.Exam, row.exam_id)
    if exam is None:
        return out
    cron = cron_of(row)
    todo = due(cron, next_fire_at=row.next_fire_at, now=now, catchup_max=catchup_max)
    if todo.dropped:
        assert todo.dropped_first is not None and todo.dropped_last is not None
        note_skip(
            session,
            row,
            exam.exam_name,
            f"{iso(todo.dropped_first)}..{iso(todo.dropped_last)}",
            f"{todo.dropped if todo.exact else f'more than {todo.dropped}'} missed fire time(s) beyond the "
            f"catch-up limit of {catchup_max} were not run",
        )
    fires = [
        f
        for f in todo.fires
        if session.scalar(
            select(m.ExamRun.id).where(m.ExamRun.schedule_id == row.id, m.ExamRun.logical_date == f)
        )
        is None
    ]
    previous = going(session, exam.id)
    busy = bool(previous) or nodes_busy(session, exam.id)
    for logical_date, action in zip(fires, plan(row.concurrency, fires, previous_going=busy), strict=True):
        if logical_date in refused:
            note_skip(
                session, row, exam.exam_name, iso(logical_date), f"could not start: {refused[logical_date]}"
            )
            out.skipped.append(logical_date)
            continue
        if action is Action.SKIP:
            why = "the previous exam run still runs (policy skip)"
            if row.concurrency == ConcurrencyPolicy.REPLACE.value:
                why = "a newer fire time was due (policy replace runs only the newest)"
            note_skip(session, row, exam.exam_name, iso(logical_date), why)
            out.skipped.append(logical_date)
        elif action is Action.QUEUE and queued_count(session, row.id) >= catchup_max:
            why = f"{catchup_max} exam runs already wait (policy queue, at most the catch-up limit)"
            note_skip(session, row, exam.exam_name, iso(logical_date), why)
            out.skipped.append(logical_date)
        elif action is Action.QUEUE:
            out.queued.append(
                queue(session, exam=exam, row=row, logical_date=logical_date, trigger="schedule")
            )
        else:
            if action is Action.REPLACE:
                out.add(stop_going(session, previous, f"replaced by the run of {iso(logical_date)}"))
                previous = []
            out.add(
                launch(
                    session, exam=exam, row=row, logical_date=logical_date, trigger="schedule", placer=placer
                )
            )
    if todo.fires:
        row.last_fire_at = todo.fires[-1]
    row.next_fire_at = todo.next_fire_at
    session.flush()
    return out


def start_queued(
    session: Session, *, placer: str | Placer, now: datetime, skip: set[int] | None = None
) -> Outcome:
    """Start the oldest queued exam run of each exam that has none running.

    A queued run starts as it is (launch_exam fills it in; its id stays).

    Args:
        skip: exams whose queued run launch_exam refused in an earlier try of this pass.
    """
    out = Outcome()
    queued = list(
        session.scalars(
            select(m.ExamRun)
            .where(m.ExamRun.state == ExamRunState.QUEUED.value, m.ExamRun.schedule_id.is_not(None))
            .order_by(m.ExamRun.logical_date, m.ExamRun.id)
        )
    )
    seen: set[int] = set()
    for er in queued:
        if er.exam_id in seen or er.exam_id in (skip or set()):
            continue
        seen.add(er.exam_id)
        row = session.get(m.ExamSchedule, er.schedule_id)
        exam = session.get(m.Exam, er.exam_id)
        if row is None or exam is None:
            er.state, er.reason, er.finished_at = (
                ExamRunState.STOPPED.value,
                "its schedule or exam is gone",
                now,
            )
            continue
        if going(session, exam.id) or nodes_busy(session, exam.id):
            continue
        logical_date, trigger = er.logical_date, er.trigger
        assert logical_date is not None
        try:
            out.add(
                launch(
                    session,
                    exam=exam,
                    row=row,
                    logical_date=logical_date,
                    trigger=trigger,
                    placer=placer,
                    queued=er,
                )
            )
        except LaunchRefused as exc:
            exc.exam_run_id, exc.exam_id = er.id, exam.id
            raise
    return out


def refuse_queued(session: Session, *, exam_run_id: int, reason: str, busy: bool, now: datetime) -> None:
    """A queued exam run launch_exam refused: a broken exam fails it; busy nodes leave it waiting."""
    er = session.get(m.ExamRun, exam_run_id)
    if er is None or er.state != ExamRunState.QUEUED.value:
        return
    if busy:
        er.reason = f"waiting: {reason}"
        return
    er.state, er.reason, er.finished_at = ExamRunState.FAILED.value, f"could not start: {reason}", now


class Scheduler:
    """Applies schedule decisions each reconcile pass, then dispatches what they started.

    Args:
        orch: the orchestrator (store work through `orch.db`, dispatch through `orch.dispatch`).
        clock: the current UTC time (naive); tests pass their own.
    """

    def __init__(self, orch: Orchestrator, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.orch = orch
        self.clock = clock

    async def tick(self) -> Outcome:
        now = self.clock()
        total = Outcome()

        def due_ids(ses: Session) -> list[int]:
            return list(
                ses.scalars(
                    select(m.ExamSchedule.id)
                    .where(m.ExamSchedule.enabled.is_(True), m.ExamSchedule.next_fire_at <= now)
                    .order_by(m.ExamSchedule.next_fire_at, m.ExamSchedule.id)
                )
            )

        for schedule_id in await self.orch.db(due_ids):
            try:
                total.add(await self._fire(schedule_id, now))
            except (ControlError, DBAPIError) as exc:  # one schedule's trouble must not stop the others
                logger.warning("schedule %s: not fired this pass: %s", schedule_id, exc)
        total.add(await self.start_queued(now))
        await self.apply(total)
        return total

    async def _fire(self, schedule_id: int, now: datetime) -> Outcome:
        refused: dict[datetime, str] = {}
        catchup = self.orch.settings.schedule_catchup_max
        while True:
            work = functools.partial(
                fire,
                schedule_id=schedule_id,
                now=now,
                placer=self.orch.place_run,
                catchup_max=catchup,
                refused=refused,
            )
            try:
                return await self.orch.db(work)
            except LaunchRefused as exc:
                if exc.logical_date in refused:
                    raise
                refused[exc.logical_date] = str(exc)

    async def start_queued(self, now: datetime | None = None) -> Outcome:
        """Start queued exam runs whose predecessor ended (this is also how a backfill begins)."""
        now = now or self.clock()
        skip: set[int] = set()
        out = Outcome()
        for _ in range(100):
            try:
                out.add(
                    await self.orch.db(
                        lambda ses: start_queued(ses, placer=self.orch.place_run, now=now, skip=skip)
                    )
                )
                return out
            except LaunchRefused as exc:
                skip.add(exc.exam_id or 0)
                refusal = functools.partial(
                    refuse_queued, exam_run_id=exc.exam_run_id or 0, reason=str(exc), busy=exc.busy, now=now
                )
                await self.orch.db(refusal)
            except DBAPIError as exc:  # a race with another control (a unique key, a deadlock)
                logger.warning("queued exam runs: not started this pass: %s", exc)
                return out
        return out

    async def apply(self, out: Outcome) -> None:
        """Stop what a replace stopped, then dispatch the started runs."""
        for adapter, external_id in out.stop:
            try:
                self.orch.spawn(self.orch.adapter(adapter).stop(external_id))
            except ControlError as exc:
                logger.warning("stopping %s: %s", external_id, exc)
        for run_id, token in out.dispatch:
            try:
                await self.orch.dispatch(run_id, token)
            except ControlError as exc:  # dispatch already failed the run with the reason
                logger.warning("run %s could not be dispatched: %s", run_id, exc)
