"""Exam runs on the wire: one launch of an exam's DAG, its runs and its edges."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from control.schemas._base import StrMap, Wire
from control.schemas.pipeline import ExamRunState
from control.schemas.runs import RunOut


class ExamRunOut(Wire):
    id: int
    exam_id: int
    exam_name: str
    space_id: int | None = None
    state: ExamRunState
    trigger: str
    """manual, schedule or backfill."""
    schedule_id: int | None = None
    logical_date: datetime | None = None
    reason: str = ""
    resumes: int = 0
    """How often the exam run was resumed."""
    created_at: datetime
    finished_at: datetime | None = None
    runs: list[RunOut] = Field(default_factory=list)
    """One run per node, upstream first (a skipped run's reason says why)."""
    edges: list[list[int]] = Field(default_factory=list)
    """`[fromNodeId, toNodeId]`: the DAG the exam run follows."""


class ExamRunPage(Wire):
    items: list[ExamRunOut]
    total: int


class ExamRunStart(Wire):
    """Body of `POST .../exams/{name}/runs` (optional): envs and runParameter for every node."""

    envs: StrMap = Field(default_factory=dict)
    run_parameter: StrMap = Field(default_factory=dict)
