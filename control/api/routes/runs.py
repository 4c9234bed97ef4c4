"""Run routes for users: list (filter, sort), describe, spec, stop, logs (paged by byte offset), metrics."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query
from sqlalchemy import select

from control import schemas as s
from control.access import Need, space_for
from control.api.deps import Caller, Orch, require_user
from control.api.params import MAX_ID, RunId, SpaceQuery
from control.api.tenancy import run_of
from control.run_logs import read_run_log
from control.schemas.runs import StopBody
from control.store import models as m
from control.store import run_list, run_views

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_user)], tags=["runs"])


@router.get("/runs", response_model=s.RunPage)
def list_runs(
    orch: Orch,
    who: Caller,
    space: SpaceQuery = None,
    node: str | None = Query(None, max_length=63, description="only runs of the node with exactly this name"),
    state: s.RunState | None = None,
    q: str | None = Query(
        None,
        max_length=500,
        description="text filter: whitespace-separated terms, all must match. A term matches the node "
        "name, state, adapter or operator runtime type (case-insensitive substring), or equals the run id "
        "when it is digits; `state:running`, `node:train` (prefix), `type:TRAIN` and `adapter:local` "
        "match that field only",
    ),
    sort: s.RunSort = Query(s.RunSort.ID, description="sort key; ties are broken by id, newest first"),
    desc: bool = Query(True, description="largest first; runs without a value (NULL) sort last either way"),
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_ID),
) -> s.RunPage:
    """A page of the caller's runs; `total` counts every one that matches the filters."""
    with orch.store.transaction() as ses:
        space_id = space_for(ses, who, space).id if space is not None else None
        rows, total = run_list.list_runs(
            session=ses,
            space_id=space_id,
            space_ids=who.space_ids(ses),
            node=node,
            state=state,
            q=q,
            sort=sort,
            desc=desc,
            limit=limit,
            offset=offset,
        )
        return s.RunPage(items=run_views.views(session=ses, runs=rows), total=total)


@router.get("/runs/{run_id}", response_model=s.RunOut)
def get_run(run_id: RunId, orch: Orch, who: Caller) -> s.RunOut:
    with orch.store.transaction() as ses:
        return run_views.view(session=ses, run=run_of(ses, who, run_id), history=True)


@router.get("/runs/{run_id}/spec", response_model=s.RunSpecView)
def run_spec(run_id: RunId, orch: Orch, who: Caller) -> s.RunSpecView:
    """The task spec frozen when the run started, without passwords, with each source's progress."""
    with orch.store.transaction() as ses:
        return run_views.spec_view(run=run_of(ses, who, run_id))


@router.post("/runs/{run_id}/stop", response_model=s.RunOut)
async def stop_run(run_id: RunId, orch: Orch, who: Caller, body: StopBody | None = Body(None)) -> s.RunOut:
    reason = str((body or {}).get("reason") or "stopped by user")
    await orch.db(lambda ses: run_of(ses, who, run_id, Need.WRITE))
    return await orch.stop_run(run_id, reason, who=who)


@router.get("/runs/{run_id}/logs", response_model=s.LogChunk)
def run_logs(
    run_id: RunId,
    orch: Orch,
    who: Caller,
    offset: int = Query(0, ge=0, le=MAX_ID),
    limit: int = Query(65536, ge=1, le=4 * 1024 * 1024),
) -> s.LogChunk:
    """Up to `limit` bytes of the run's log from byte `offset`; `eof` once the run is over and read."""
    with orch.store.transaction() as ses:
        run = run_of(ses, who, run_id)
        path, ended = run.log_path, s.RunState(run.state).is_terminal()
    page = read_run_log(orch.settings.runs_dir, run_id, path, offset, limit)
    next_offset = min(offset, page.size) + len(page.data)
    return s.LogChunk(
        offset=offset,
        next_offset=next_offset,
        text=page.data.decode("utf-8", "replace"),
        eof=ended and page.whole and next_offset >= page.size,
    )


@router.get("/runs/{run_id}/metrics", response_model=list[s.MetricPoint])
def run_metrics(run_id: RunId, orch: Orch, who: Caller) -> list[s.MetricPoint]:
    with orch.store.transaction() as ses:
        run_of(ses, who, run_id)
        rows = ses.scalars(
            select(m.RunMetric).where(m.RunMetric.runtime_id == run_id).order_by(m.RunMetric.id)
        )
        return [s.MetricPoint(step=r.step, name=r.name, value=r.value, at=r.at) for r in rows]
