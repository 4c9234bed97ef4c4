"""Exam runs: one launch of an exam's DAG, moved on as its runs end."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from control import schemas as s
from control.launch import Placer
from control.store import models as m


def launch_exam(
    *,
    session: Session,
    exam: m.Exam,
    event: s.TaskEvent,
    adapter: str | Placer,
    trigger: str = "manual",
    schedule_id: int | None = None,
    logical_date: datetime | None = None,
) -> tuple[m.ExamRun, list[tuple[m.Runtime, str | None]]]:
    """Create an exam run and one queued run per node; roots come with a token (dispatch them now).

    Raises:
        InvalidSpec: the exam has no nodes, some are not EDIT_FINISH, or its DAG has a cycle.
        Conflict: one of its nodes is already running.
    """
    raise NotImplementedError


def stop_exam_run(*, session: Session, exam_run: m.ExamRun, reason: str) -> list[int]:
    """Stop every unfinished run of the exam run; returns the run ids whose targets must be stopped."""
    raise NotImplementedError
