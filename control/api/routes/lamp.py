"""The seed's REST paths, kept as seed 000 gives them (camelCase bodies)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from control import schemas as s
from control.api.deps import Orch, bearer, require_user
from control.errors import Unauthorized
from control.secrets import token_hash
from control.store import models as m
from control.store import relations

LAMP = "/lamp/atom/service/operator"
router = APIRouter(tags=["seed paths"])


@router.post(
    f"{LAMP}/node/createNodeRelation", response_model=s.NodeRelationOut, dependencies=[Depends(require_user)]
)
def create_node_relation(body: s.NodeRelationIn, orch: Orch) -> dict[str, Any]:
    """Bind a node to its operator, data sources, model and base / max / min service info."""
    with orch.store.transaction() as ses:
        rel = relations.upsert_relation(session=ses, body=body)
        return relations.relation_view(session=ses, rel=rel)


@router.post(
    f"{LAMP}/taskEvent/startNodeTask", response_model=s.StartResult, dependencies=[Depends(require_user)]
)
async def start_node_task(event: s.TaskEvent, orch: Orch) -> s.StartResult:
    """Start a node (taskType NODE) or an exam (taskType EXAM, taskId = exam id).

    A node must be EDIT_FINISH and complete; its run is created and dispatched. An exam starts
    every node in nextNodeId order: roots at once, each other node queued until its upstream
    runs succeed (stopped if one fails). `runIds` lists every run, roots first.
    """
    run_ids = await orch.start_node(event)
    if len(run_ids) == 1:
        return s.StartResult(run_ids=run_ids, msg=f"run {run_ids[0]} started")
    return s.StartResult(run_ids=run_ids, msg=f"exam started: runs {', '.join(map(str, run_ids))}")


@router.post(f"{LAMP}/taskEvent/runningAutoFinish", response_model=s.FinishResult)
async def running_auto_finish(event: s.TaskEvent, orch: Orch, request: Request) -> s.FinishResult:
    """Called by the agent (run token) or a user: mark the run succeeded and deploy by deployType."""
    await _require_finisher(request, orch, event)
    return await orch.finish(event)


async def _require_finisher(request: Request, orch: Orch, event: s.TaskEvent) -> None:
    token = bearer(request)
    run_id = event.run_parameter.get("runId")
    if token and run_id and str(run_id).isdigit():

        def check(ses: Any) -> bool:
            run = ses.get(m.Runtime, int(run_id))
            return run is not None and run.token_hash == token_hash(token)

        if await orch.db(check):
            return
    try:
        require_user(request)
    except Unauthorized:
        raise Unauthorized("runningAutoFinish needs the run's token or a user token") from None


@router.post("/operator/create_operators", response_model=s.StartResult, dependencies=[Depends(require_user)])
async def create_operators(payload: s.CreateOperatorsPayload, orch: Orch) -> s.StartResult:
    """Run a training operator from a full payload (seed 000 §5.1) without a stored node."""
    run_ids = await orch.create_operators(payload)
    return s.StartResult(run_ids=run_ids, msg=f"run {run_ids[0]} started")
