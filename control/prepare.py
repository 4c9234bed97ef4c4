"""Preparing a claimed run for its adapter, in the store: bind its spec, take its quota, record
its log file, or record why it waits.

The exam engine, retries and resumes prepare the runs they claim in the claiming transaction
(`prepare_claimed`); `Orchestrator.dispatch` then starts each with its adapter, outside any
transaction.
"""

from __future__ import annotations

import dataclasses
import logging

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from control import quota, runs
from control import schemas as s
from control.dispatch.describe import RunNames, run_dirs
from control.errors import InvalidSpec
from control.pipeline import binding
from control.settings import Settings
from control.store import models as m

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A run ready for its adapter, as one transaction left it.

    Attributes:
        over_quota: why it waits for its space's quota (recorded; nothing is held).
        cacheable: its node is cacheable: nothing was reserved, the cache decides first.
    """

    run: m.Runtime
    spec: s.TaskSpec
    names: RunNames
    over_quota: str = ""
    cacheable: bool = False


@dataclasses.dataclass(frozen=True)
class ReadyRun:
    """A run just claimed (by the exam engine, a retry, a resume): its token, and `prepared`
    unless it was refused (failed) while being prepared."""

    run_id: int
    token: str
    prepared: Prepared | None


def prepare(ses: Session, run_id: int, settings: Settings, *, check_cache: bool) -> Prepared:
    """One transaction: bind the run's spec (the node as it is now, inputs resolved), then take
    its quota (TRYING) and record its log file, or record why it waits."""
    run = runs.get_run(session=ses, run_id=run_id)
    spec = binding.bind(session=ses, run=run)
    space = ses.get(m.Space, run.space_id) if run.space_id is not None else None
    exam = ses.get(m.Exam, run.exam_id) if run.exam_id is not None else None
    node = ses.get(m.Node, run.node_id) if run.node_id is not None else None
    names = RunNames(
        space=space.space_name if space else "default",
        exam=exam.exam_name if exam else "",
        model_version=runs.next_model_version(session=ses, spec=spec),
        retries=node.max_retries if node else 0,
    )
    if check_cache and node is not None and node.cacheable:
        return Prepared(run, spec, names, cacheable=True)
    over_quota = quota.try_reserve(ses, run)
    if over_quota:
        wait(ses, run_id, over_quota)
    else:
        run.log_path = str(run_dirs(settings, run_id, create=False)["ATOM_LOG_DIR"] / "agent.log")
    return Prepared(run, spec, names, over_quota=over_quota)


def wait(ses: Session, run_id: int, reason: str) -> None:
    """Leave a run pending (not dispatched) until its adapter has the resources; reconcile retries."""
    run = runs.get_run(session=ses, run_id=run_id)
    sched = runs.schedule_of(session=ses, run_id=run_id)
    if sched is not None:
        sched.info = {"waiting": reason}
        sched.last_sync_at = m.utcnow()
    if run.state == s.RunState.QUEUED.value:
        runs.transition(session=ses, run=run, to=s.RunState.PENDING, reason=reason)
    else:
        run.reason = reason
    quota.cancel(ses, run_id)  # a waiting run holds no quota


def prepare_claimed(ses: Session, claimed: list[tuple[int, str]], settings: Settings) -> list[ReadyRun]:
    """`prepare` each run just claimed, in the claiming transaction. A run that cannot be prepared
    is failed here with the reason (`prepared` None: nothing to dispatch); its siblings go on."""
    out: list[ReadyRun] = []
    for run_id, token in claimed:
        try:
            prep: Prepared | None = prepare(ses, run_id, settings, check_cache=True)
        except InvalidSpec as exc:
            binding.refuse(ses, run_id, str(exc))
            prep = None
        except SQLAlchemyError:  # the transaction is lost: the reconcile loop claims them again
            raise
        except Exception as exc:  # a fault of this run's alone must not hold its siblings back
            logger.exception("run %s could not be prepared", run_id)
            binding.refuse(ses, run_id, f"control could not prepare the run ({type(exc).__name__}: {exc})")
            prep = None
        out.append(ReadyRun(run_id, token, prep))
    return out
