"""Attempt rows of a run (`RunAttempt`): one per try, opened at dispatch, closed when the try ends.

Pure bookkeeping in the caller's transaction; the retry policy is in `control.retries`. Each
attempt keeps its reason, failure class and log file (an earlier attempt's log is moved aside
before the next one starts, see `keep_log`).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from control.run_logs import END, SHIFT, shipped_path
from control.store import models as m
from control.store.models import utcnow
from control.store.pipeline_models import RunAttempt

OPEN = "running"


def row_of(session: Session, run_id: int, attempt: int) -> RunAttempt | None:
    return session.scalar(
        select(RunAttempt).where(RunAttempt.runtime_id == run_id, RunAttempt.attempt == attempt)
    )


def list_of(session: Session, run_id: int) -> list[RunAttempt]:
    """The run's attempts, first to last."""
    return list(
        session.scalars(
            select(RunAttempt).where(RunAttempt.runtime_id == run_id).order_by(RunAttempt.attempt)
        )
    )


def open_attempt(session: Session, run: m.Runtime, *, adapter: str, external_id: str | None) -> RunAttempt:
    """The row of the run's current attempt, opened (running) now that it was dispatched."""
    row = row_of(session, run.id, run.attempt)
    if row is None:
        row = RunAttempt(runtime_id=run.id, attempt=run.attempt, started_at=utcnow())
        session.add(row)
    elif row.state != OPEN:  # it ended while it was being started
        return row
    row.state = OPEN
    row.adapter = adapter
    row.external_id = external_id
    row.log_path = run.log_path or ""
    session.flush()
    return row


def close(
    session: Session,
    run: m.Runtime,
    *,
    state: str,
    reason: str,
    failure_class: str | None = None,
    retryable: bool = False,
) -> RunAttempt | None:
    """End the run's current attempt as `state`; an attempt that already ended is left as it is.

    Returns:
        The row closed now, or None when the attempt had already ended.
    """
    row = row_of(session, run.id, run.attempt)
    if row is None:
        row = RunAttempt(
            runtime_id=run.id,
            attempt=run.attempt,
            adapter=run.adapter,
            log_path=run.log_path or "",
            started_at=run.started_at or utcnow(),
        )
        session.add(row)
    elif row.state != OPEN:
        return None
    if not row.external_id:  # it ended before its start was recorded: where it was started
        sched = session.scalar(
            select(m.Schedule).where(m.Schedule.runtime_id == run.id).order_by(m.Schedule.id.desc())
        )
        row.external_id = sched.external_id if sched is not None else None
    row.state = state
    row.reason = reason
    row.failure_class = failure_class
    row.retryable = retryable
    row.finished_at = utcnow()
    session.flush()
    return row


def attempt_log(path: str, attempt: int) -> Path:
    """Where attempt `attempt` keeps its copy of log file `path` (`agent.log` -> `agent.attempt-1.log`)."""
    p = Path(path)
    return p.with_name(f"{p.stem}.attempt-{attempt}{p.suffix or '.log'}")


def keep_log(session: Session, run: m.Runtime, runs_dir: Path) -> None:
    """Move the current attempt's log files aside (before the next attempt writes its own).

    The run's log file and the log its agent shipped to control each get an `.attempt-N` name;
    the attempt row points at the one `GET /runs/{id}/logs` would have read.
    """
    row = row_of(session, run.id, run.attempt)
    kept: Path | None = None
    shipped = shipped_path(runs_dir, run.id)
    if shipped.exists():
        kept = attempt_log(str(shipped), run.attempt)
        os.replace(shipped, kept)
        for extra in (SHIFT, END):
            shipped.with_name(extra).unlink(missing_ok=True)
    if run.log_path and Path(run.log_path).exists():
        moved = attempt_log(run.log_path, run.attempt)
        os.replace(run.log_path, moved)
        kept = kept or moved
    if row is not None and kept is not None:
        row.log_path = str(kept)


def log_file(row: RunAttempt, run: m.Runtime, runs_dir: Path) -> Path | None:
    """The log file of attempt `row`: its kept copy, or (the current attempt) the run's live log."""
    if row.attempt == run.attempt:
        shipped = shipped_path(runs_dir, run.id)
        if shipped.exists():
            return shipped
        if run.log_path and Path(run.log_path).exists():
            return Path(run.log_path)
    path = Path(row.log_path) if row.log_path else None
    if path is not None and f".attempt-{row.attempt}." in path.name and path.exists():
        return path
    return None
