"""A run's attempts (each try, its reason, failure class and log) and a user's re-run of an ended run."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Path, Query
from pydantic import ConfigDict
from sqlalchemy.orm import Session

from control import attempts, audit, retries
from control import schemas as s
from control.access import Need
from control.api.deps import Caller, Orch, require_user
from control.api.params import RunId
from control.api.tenancy import run_of
from control.errors import NotFound
from control.run_logs import read
from control.schemas._base import Wire
from control.store import run_views

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_user)], tags=["runs"])

LOG_LIMIT = 4 * 1024 * 1024


class AttemptOut(Wire):
    """One try of a run (`atom describe run`, the TUI's run detail)."""

    attempt: int
    state: str
    reason: str = ""
    failure_class: str | None = None
    """user, spec, lost, connection, timeout, preempted, infra."""
    retryable: bool = False
    """Whether this failure let the run try again (a next attempt followed if any were left)."""
    adapter: str = ""
    external_id: str | None = None
    started_at: datetime
    finished_at: datetime | None = None
    has_log: bool = False


class AttemptLog(Wire):
    model_config = ConfigDict(**{**Wire.model_config, "str_strip_whitespace": False})

    attempt: int
    text: str
    truncated: bool = False
    """Only the last `limit` bytes are here."""


class RerunBody(Wire):
    reason: str = "re-run by user"


AttemptNo = Path(ge=1, le=10_000)


@router.get("/runs/{run_id}/attempts", response_model=list[AttemptOut])
def run_attempts(run_id: RunId, orch: Orch, who: Caller) -> list[AttemptOut]:
    """The run's attempts, first to last."""
    runs_dir = orch.settings.runs_dir
    with orch.store.transaction() as ses:
        run = run_of(ses, who, run_id)
        return [
            AttemptOut.model_validate(
                {**AttemptOut.fields_of(row), "has_log": attempts.log_file(row, run, runs_dir) is not None}
            )
            for row in attempts.list_of(ses, run.id)
        ]


@router.get("/runs/{run_id}/attempts/{attempt}/log", response_model=AttemptLog)
def attempt_log(
    run_id: RunId,
    orch: Orch,
    who: Caller,
    attempt: int = AttemptNo,
    limit: int = Query(LOG_LIMIT, ge=1, le=LOG_LIMIT),
) -> AttemptLog:
    """The last `limit` bytes of one attempt's log."""
    with orch.store.transaction() as ses:
        run = run_of(ses, who, run_id)
        row = attempts.row_of(ses, run.id, attempt)
        if row is None:
            raise NotFound(f"run {run_id} has no attempt {attempt} (it has {run.attempt})")
        path = attempts.log_file(row, run, orch.settings.runs_dir)
    _, size = read(path, 0, 0)
    data, _ = read(path, max(size - limit, 0), limit)
    text = data.decode("utf-8", "replace")
    return AttemptLog(attempt=attempt, text=text, truncated=size > limit)


@router.post("/runs/{run_id}/rerun", response_model=s.RunOut)
async def rerun(run_id: RunId, orch: Orch, who: Caller, body: RerunBody | None = None) -> s.RunOut:
    """Run an ended run again as its next attempt: the same run id, so the same sink run key (its
    sinks' rows are replaced, not added twice). 409 while the run is active."""
    reason = (body or RerunBody()).reason

    def requeue(ses: Session) -> str:
        run = run_of(ses, who, run_id, Need.WRITE)
        audit.record(ses, who, "rerun", "run", run.id, space_id=run.space_id, reason=reason)
        return retries.rerun(session=ses, run=run, reason=reason, runs_dir=orch.settings.runs_dir)

    token = await orch.db(requeue)
    await orch.dispatch(run_id, token)
    return await orch.db(lambda ses: run_views.view(session=ses, run=run_of(ses, who, run_id), history=True))
