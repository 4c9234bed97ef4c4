"""Trials of a run's hyper-parameter search: the agent reports them (run token), users list them.

`POST /api/v1/runs/{run_id}/trials` upserts each `[{trialId, params, state, metrics, history,
score, best}]` by (run, trialId), so a report sent again changes nothing; `GET` lists them,
best first, then by score in the search's direction.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session

from control import runs
from control.api.deps import Caller, Orch, RunToken
from control.api.params import RunId
from control.api.tenancy import run_of
from control.errors import InvalidSpec
from control.schemas.trials import TrialList, TrialOut, TrialReport, TrialReports, TrialState
from control.store import models as m
from control.store.pipeline_models import RunTrial

router = APIRouter(prefix="/api/v1", tags=["trials"])


def search_of(run: m.Runtime) -> dict[str, Any]:
    """The searchConf frozen in the run's task spec ({} for a run without a search)."""
    operator = (run.spec or {}).get("operator") or {}
    conf = operator.get("searchConf") or operator.get("search_conf") or {}
    return conf if isinstance(conf, dict) else {}


def upsert(session: Session, run_id: int, reports: list[TrialReport]) -> int:
    """Insert or replace each trial of run `run_id`; a best trial clears the flag on the others."""
    ids = [r.trial_id for r in reports]
    if len(set(ids)) != len(ids):
        raise InvalidSpec("a trial id appears twice in one report", field="trialId", field_msg="duplicate")
    rows = {
        row.trial_id: row
        for row in session.scalars(
            select(RunTrial).where(RunTrial.runtime_id == run_id, RunTrial.trial_id.in_(ids))
        )
    }
    for report in reports:
        row = rows.get(report.trial_id)
        if row is None:
            row = RunTrial(runtime_id=run_id, trial_id=report.trial_id)
            session.add(row)
        row.params = dict(report.params)
        row.state = report.state.value
        row.metrics = dict(report.metrics)
        row.history = [[int(step), float(value)] for step, value in report.history]
        row.score = report.score
        row.best = report.best
    best = [r.trial_id for r in reports if r.best]
    if best:
        for other in session.scalars(
            select(RunTrial).where(
                RunTrial.runtime_id == run_id, RunTrial.best.is_(True), RunTrial.trial_id.not_in(best)
            )
        ):
            other.best = False
    session.flush()
    return len(reports)


def trial_view(row: RunTrial) -> TrialOut:
    return TrialOut(
        trial_id=row.trial_id,
        params=dict(row.params or {}),
        state=TrialState(row.state),
        metrics={str(k): float(v) for k, v in (row.metrics or {}).items()},
        history=[(int(p[0]), float(p[1])) for p in (row.history or [])],
        score=row.score,
        best=bool(row.best),
        updated_at=row.updated_at,
    )


def ordered(rows: list[RunTrial], mode: str | None) -> list[RunTrial]:
    """Best first, then scored trials from best to worst score, then the rest by trial id."""
    sign = 1.0 if mode == "min" else -1.0

    def key(row: RunTrial) -> tuple[int, int, float, str]:
        scored = row.score is not None
        return (0 if row.best else 1, 0 if scored else 1, sign * (row.score or 0.0), row.trial_id)

    return sorted(rows, key=key)


def list_trials(session: Session, run: m.Runtime) -> TrialList:
    conf = search_of(run)
    mode = str(conf["mode"]) if conf.get("mode") else None
    rows = list(session.scalars(select(RunTrial).where(RunTrial.runtime_id == run.id)))
    return TrialList(
        run_id=run.id,
        metric=str(conf["metric"]) if conf.get("metric") else None,
        mode=mode,
        items=[trial_view(row) for row in ordered(rows, mode)],
    )


@router.post("/runs/{run_id}/trials")
async def report_trials(run_id: RunId, reports: TrialReports, token: RunToken, orch: Orch) -> dict[str, int]:
    """The agent's trials so far (run token); each is stored by (run, trialId)."""

    def store(ses: Session) -> int:
        runs.agent_run(session=ses, run_id=run_id, token=token)
        return upsert(ses, run_id, reports)

    return {"stored": await orch.db(store)}


@router.get("/runs/{run_id}/trials", response_model=TrialList)
async def get_trials(run_id: RunId, orch: Orch, who: Caller) -> TrialList:
    """Every trial of the run's search, best first (a run in another space: 404)."""
    return await orch.db(lambda ses: list_trials(ses, run_of(ses, who, run_id)))


__all__ = ["list_trials", "router", "search_of", "upsert"]
