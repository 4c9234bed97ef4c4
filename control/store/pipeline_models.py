"""ORM models of pipelines: DAG edges, exam runs, attempts, artifacts, trials and cron schedules.

An exam run (`ExamRun`) is one launch of an exam: one `Runtime` per node, tied by
`Runtime.exam_run_id`, each waiting for its upstream runs (`RunUpstream`).
A run is tried up to `Runtime.max_attempts` times; every attempt keeps
its own row (`RunAttempt`) with its reason, failure class and log. Outputs a run leaves
(model version, sink datasets, declared files, final metrics) are `RunArtifact` rows that
downstream nodes refer to by node and output name. `RunTrial` rows are the trials of a
hyper-parameter search. `ExamSchedule` fires exam runs from a cron expression.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control.store.base import Base, Id, Stamp, fk, utcnow


class NodeEdge(Base):
    """`from_node_id -> to_node_id`: the downstream node waits for the upstream one (per its trigger rule)."""

    __tablename__ = "node_edges"
    __table_args__ = (UniqueConstraint("from_node_id", "to_node_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    from_node_id: Mapped[int] = fk("nodes.id", ondelete="CASCADE")
    to_node_id: Mapped[int] = fk("nodes.id", ondelete="CASCADE")


class RunUpstream(Base):
    """`runtime_id` waits for `upstream_id`: `Runtime.upstream_run_ids` as rows, so the exam engine
    finds the runs whose upstream runs have all ended with one indexed query. No foreign key on
    `upstream_id`: a row naming a run that no longer exists counts as a missing upstream."""

    __tablename__ = "run_upstreams"
    runtime_id: Mapped[int] = mapped_column(
        Id, ForeignKey("runtimes.id", ondelete="CASCADE"), primary_key=True
    )
    upstream_id: Mapped[int] = mapped_column(Id, primary_key=True, index=True)


class ExamRun(Base):
    """One launch of an exam: by hand, by its schedule, by a backfill, or a resume of an earlier one."""

    __tablename__ = "exam_runs"
    __table_args__ = (UniqueConstraint("schedule_id", "logical_date"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    space_id: Mapped[int | None] = mapped_column(Id, ForeignKey("spaces.id"), nullable=True, index=True)
    exam_id: Mapped[int] = mapped_column(Id, index=True)
    """No foreign key: the record outlives the exam."""
    exam_name: Mapped[str] = mapped_column(String(128), default="")
    state: Mapped[str] = mapped_column(String(16), default="running", index=True)
    """running, succeeded, failed, stopped."""
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    """manual, schedule, backfill."""
    schedule_id: Mapped[int | None] = mapped_column(Id, nullable=True, index=True)
    logical_date: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    """The moment a scheduled or backfilled run stands for (handed to operators as ATOM_LOGICAL_DATE)."""
    reason: Mapped[str] = mapped_column(Text, default="")
    resumes: Mapped[int] = mapped_column(Integer, default=0)
    """How often the exam run was resumed."""
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)


class RunAttempt(Base):
    """One try of a run: the run's id stays, each attempt keeps its reason and log."""

    __tablename__ = "run_attempts"
    __table_args__ = (UniqueConstraint("runtime_id", "attempt"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    runtime_id: Mapped[int] = fk("runtimes.id", ondelete="CASCADE")
    attempt: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="running")
    reason: Mapped[str] = mapped_column(Text, default="")
    failure_class: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """user, spec, lost, connection, timeout, preempted, infra (see `FailureClass`)."""
    retryable: Mapped[bool] = mapped_column(Boolean, default=False)
    log_path: Mapped[str] = mapped_column(String(1024), default="")
    adapter: Mapped[str] = mapped_column(String(16), default="")
    external_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    started_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)


class RunArtifact(Base):
    """An output a run left: `model` (the version it registered), a `dataset` (a sink it wrote),
    a `file` it declared, or its final `metrics`; downstream inputs name it `node.output`."""

    __tablename__ = "run_artifacts"
    __table_args__ = (UniqueConstraint("runtime_id", "name"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    runtime_id: Mapped[int] = fk("runtimes.id", ondelete="CASCADE")
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    uri: Mapped[str] = mapped_column(String(1024), default="")
    value: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reused_from: Mapped[int | None] = mapped_column(Id, nullable=True)
    """The run whose artifact this is a copy of (a cached or resumed node)."""
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)


class RunTrial(Base):
    """One trial of a run's hyper-parameter search (Ray Tune)."""

    __tablename__ = "run_trials"
    __table_args__ = (UniqueConstraint("runtime_id", "trial_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    runtime_id: Mapped[int] = fk("runtimes.id", ondelete="CASCADE")
    trial_id: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="running")
    """running, succeeded, failed, stopped (early stopping)."""
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """The last reported metrics."""
    history: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """`[step, value]` of the search metric, one per report."""
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    best: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow, onupdate=utcnow)


class ExamSchedule(Base):
    """A cron schedule of an exam: fires exam runs at each logical date between start and end."""

    __tablename__ = "exam_schedules"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    space_id: Mapped[int] = fk("spaces.id")
    exam_id: Mapped[int] = mapped_column(Id, ForeignKey("exams.id", ondelete="CASCADE"), unique=True)
    cron: Mapped[str] = mapped_column(String(128))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    start_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    end_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    concurrency: Mapped[str] = mapped_column(String(8), default="skip")
    """skip, queue or replace, while the previous exam run is still going."""
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_fire_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True, index=True)
    """UTC; None once past `end_at`."""
    last_fire_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow, onupdate=utcnow)
