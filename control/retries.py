"""Retries: every failure of a run goes through `fail_run`, which retries it or ends it.

A failed attempt is retried when its failure class is retryable (a lost agent, a dropped
connection, a timeout, a preempted node, a target that could not start it), or when the
operator opted in to retries of its own errors (`retryOnUserError`), and the run has attempts
left (`max_attempts` = 1 + the node's maxRetries). The run then waits queued, its quota
released, until `retry_at` (exponential backoff with jitter: `backoff`); the reconcile loop
claims it then (`claim_due`) as its next attempt, with the same run id and so the same sink run
key. A user's re-run of an ended run (`rerun`) is one more attempt of the same run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from control import attempts, quota, runs
from control import schemas as s
from control.errors import Conflict
from control.schemas.pipeline import FailureClass
from control.secrets import new_token, token_hash
from control.store import models as m
from control.store.models import utcnow

ACTIVE = (s.RunState.QUEUED.value, s.RunState.PENDING.value, s.RunState.RUNNING.value)


class RetrySettings(Protocol):
    retry_base_s: float
    retry_cap_s: float
    retry_jitter: float


class Uniform(Protocol):
    def random(self) -> float: ...


def backoff(attempt: int, settings: RetrySettings, rng: Uniform | None = None) -> float:
    """Seconds to wait after attempt `attempt` (1-based) failed, before the next one starts.

    `min(cap, base * 2**(attempt-1))`, stretched by up to `retry_jitter` (a fraction) at random
    so that runs failed together do not all come back at the same moment.
    """
    base = min(settings.retry_cap_s, settings.retry_base_s * 2 ** max(attempt - 1, 0))
    draw = (rng or random).random()
    return base * (1 + settings.retry_jitter * draw)


PREEMPTED_WORDS = ("preempt", "evict", "was lost (", "taken off node", "spot instance", "node shutdown")
TIMEOUT_WORDS = ("deadlineexceeded", "deadline exceeded", "passed its deadline", "timed out")
INFRA_WORDS = ("could not be pulled", "could not be created")


def observed_class(detail: str) -> FailureClass:
    """The class of a failure the reconcile loop observed: its target was taken away (a preempted
    or evicted pod, a lost node), its time ran out (a Job's deadline), it could not start (an
    image that cannot be pulled), else a lost agent (a dead process, a missed heartbeat).
    The phrases are those of the adapters' details (`control.dispatch.k8s_status`)."""
    text = detail.lower()
    if any(word in text for word in PREEMPTED_WORDS):
        return FailureClass.PREEMPTED
    if any(word in text for word in TIMEOUT_WORDS):
        return FailureClass.TIMEOUT
    if any(word in text for word in INFRA_WORDS):
        return FailureClass.INFRA
    return FailureClass.LOST


def _secs(delay: float) -> str:
    return f"{delay:.0f} s" if delay >= 1 else f"{delay:.1f} s"


def fail_run(
    *,
    session: Session,
    run: m.Runtime,
    reason: str,
    failure: FailureClass | None,
    retryable: bool | None = None,
    settings: RetrySettings,
    now: datetime | None = None,
    rng: Uniform | None = None,
) -> bool:
    """One attempt of `run` failed: queue its next attempt or fail the run.

    Args:
        failure: why; None (unknown, e.g. a process that vanished) counts as a lost agent.
        retryable: True: the operator opted in to retries of its own (USER) errors.
        now: the current time (tests inject it).

    Returns:
        True when a next attempt was queued; False when the run failed (or had already ended).
    """
    if run.state not in ACTIVE:
        return False
    if run.state == s.RunState.QUEUED.value and run.retry_at is not None:
        return True  # its attempt failed already (a late report of the same failure)
    kind = failure or FailureClass.LOST
    again = kind.retryable or (kind == FailureClass.USER and retryable is True)
    attempts.close(
        session,
        run,
        state=s.RunState.FAILED.value,
        reason=reason,
        failure_class=kind.value,
        retryable=again,
    )
    run.failure_class = kind.value
    of = f"{run.attempt}/{run.max_attempts}"
    if run.state == s.RunState.QUEUED.value:  # it failed while being dispatched
        runs.transition(session=session, run=run, to=s.RunState.PENDING, reason="dispatching")
    if again and run.attempt < run.max_attempts and not run.stop_requested:
        delay = backoff(run.attempt, settings, rng)
        run.retry_at = (now or utcnow()) + timedelta(seconds=delay)
        why = f"attempt {of} failed ({kind.value}: {reason}); attempt {run.attempt + 1} in {_secs(delay)}"
        runs.transition(session=session, run=run, to=s.RunState.QUEUED, reason=why)
        quota.cancel(session, run.id)  # a run backing off holds nothing
        sched = runs.schedule_of(session=session, run_id=run.id)
        if sched is not None:  # the next attempt gets its own target
            sched.external_id = None
            sched.info = {}
        return True
    run.retry_at = None
    prefix = f"attempt {of}: " if run.max_attempts > 1 else ""
    runs.transition(session=session, run=run, to=s.RunState.FAILED, reason=prefix + reason)
    return False


@dataclass(frozen=True)
class Claimed:
    run_id: int
    token: str
    attempt: int


def next_attempt(session: Session, run: m.Runtime, runs_dir: Path | None) -> None:
    """Count `run`'s next attempt: keep the last attempt's log, clear what belonged to it, spec.attempt.

    Shared by a due retry, a user's re-run and a resume of the run's exam run.
    """
    if runs_dir is not None:
        attempts.keep_log(session, run, runs_dir)
    run.attempt += 1
    run.max_attempts = max(run.max_attempts, run.attempt)
    run.retry_at = None
    run.failure_class = None  # the earlier attempts keep theirs (`RunAttempt`)
    run.heartbeat_at = None  # silence counts from this attempt's dispatch
    run.stop_requested = False
    run.progress = None
    run.stage = None
    run.spec = {**run.spec, "attempt": run.attempt}


def _start_attempt(session: Session, run: m.Runtime, runs_dir: Path | None) -> str:
    """Make `run` (queued) its next attempt, pending with a new token."""
    next_attempt(session, run, runs_dir)
    token = new_token()
    run.token_hash = token_hash(token)
    runs.transition(
        session=session,
        run=run,
        to=s.RunState.PENDING,
        reason=f"attempt {run.attempt}/{run.max_attempts} starting",
    )
    return token


def claim_due(
    *, session: Session, now: datetime | None = None, runs_dir: Path | None = None
) -> list[Claimed]:
    """Claim every queued run whose next attempt is due (`retry_at <= now`), oldest first.

    Each becomes pending as attempt n+1 with a fresh run token: dispatch them.
    """
    due = session.scalars(
        select(m.Runtime)
        .where(
            m.Runtime.state == s.RunState.QUEUED.value,
            m.Runtime.retry_at.is_not(None),
            m.Runtime.retry_at <= (now or utcnow()),
        )
        .order_by(m.Runtime.retry_at, m.Runtime.id)
    ).all()
    out = []
    for run in due:
        token = _start_attempt(session, run, runs_dir)
        out.append(Claimed(run.id, token, run.attempt))
    return out


def rerun(*, session: Session, run: m.Runtime, reason: str, runs_dir: Path | None = None) -> str:
    """A user's re-run of an ended run: the same run (id, sink run key) as its next attempt, started now.

    Returns:
        The new attempt's run token: dispatch the run.

    Raises:
        Conflict: the run has not ended.
    """
    state = s.RunState(run.state)
    if not state.is_terminal():
        raise Conflict(f"run {run.id} is {run.state}: stop it or wait for it to end before a re-run")
    attempts.close(session, run, state=state.value, reason=run.reason)  # an attempt with no row yet
    run.max_attempts = max(run.max_attempts, run.attempt) + 1
    run.finished_at = None
    run.failure_class = None
    run.stop_requested = False
    why = f"re-run: attempt {run.attempt + 1}/{run.max_attempts} ({reason})"
    run.state = s.RunState.QUEUED.value  # an ended run is queued again explicitly (`states.RESUMABLE`)
    run.reason = why
    session.add(m.RunTransition(runtime_id=run.id, from_state=state.value, to_state=run.state, reason=why))
    session.flush()
    return _start_attempt(session, run, runs_dir)


def end_attempt(session: Session, run: m.Runtime, to: s.RunState, reason: str) -> None:
    """`runs.transition` to an end: close the current attempt the same way (a failure `fail_run`
    closed already is kept as it was)."""
    attempts.close(session, run, state=to.value, reason=reason)
