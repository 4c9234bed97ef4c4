"""The seed's REST paths, kept as seed 000 gives them (camelCase bodies)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from control import audit, runs
from control import schemas as s
from control.access import Need, Principal, allow
from control.api.deps import Caller, Orch, bearer, caller, require_user
from control.api.tenancy import run_of
from control.errors import Forbidden, InvalidSpec, NotFound, Unauthorized
from control.secrets import token_hash
from control.store import models as m
from control.store import relations

LAMP = "/lamp/atom/service/operator"
router = APIRouter(tags=["seed paths"])


@router.post(
    f"{LAMP}/node/createNodeRelation", response_model=s.NodeRelationOut, dependencies=[Depends(require_user)]
)
def create_node_relation(body: s.NodeRelationIn, orch: Orch, who: Caller) -> dict[str, Any]:
    """Bind a node to its operator, data sources, model and base / max / min service info."""
    with orch.store.transaction() as ses:
        node = ses.get(m.Node, body.node_id)
        if node is not None:
            try:
                allow(ses, who, node.space_id, Need.WRITE, "")
            except NotFound:  # as upsert_relation words a missing node
                raise InvalidSpec(
                    f"node {body.node_id} does not exist", field="nodeId", field_msg="no such node"
                ) from None
        rel = relations.upsert_relation(session=ses, body=body)
        if node is not None:
            audit.record(ses, who, "change", "node-relation", node.node_name, space_id=node.space_id)
        return relations.relation_view(session=ses, rel=rel)


@router.post(
    f"{LAMP}/taskEvent/startNodeTask", response_model=s.StartResult, dependencies=[Depends(require_user)]
)
async def start_node_task(event: s.TaskEvent, orch: Orch, who: Caller) -> s.StartResult:
    """Start a node (taskType NODE) or an exam (taskType EXAM, taskId = exam id).

    A node must be EDIT_FINISH and complete; its run is created and dispatched. An exam starts
    an exam run of every node in DAG order: roots at once, each other node queued until its
    upstream runs end, then run or skipped by its trigger rule. `runIds` lists every run, roots first.
    """
    await orch.db(lambda ses: _may_start(ses, who, event))
    run_ids = await orch.start_node(event, who=who)
    if len(run_ids) == 1:
        return s.StartResult(run_ids=run_ids, msg=f"run {run_ids[0]} started")
    return s.StartResult(run_ids=run_ids, msg=f"exam started: runs {', '.join(map(str, run_ids))}")


@router.post(f"{LAMP}/taskEvent/runningAutoFinish", response_model=s.FinishResult)
async def running_auto_finish(event: s.TaskEvent, orch: Orch, request: Request) -> s.FinishResult:
    """Called by the agent (run token) or a user: mark the run succeeded and deploy by deployType."""
    who = await _require_finisher(request, orch, event)
    if who is not None:
        await orch.db(
            lambda ses: run_of(ses, who, runs.run_for_finish(session=ses, event=event).id, Need.WRITE)
        )
    result = await orch.finish(event)

    def record(ses: Session) -> None:
        run = runs.get_run(session=ses, run_id=result.run_id)
        detail = {"serviceId": result.service_id} if result.service_id is not None else {}
        audit.record(ses, who or "agent", "finish", "run", run.id, space_id=run.space_id, **detail)

    await orch.db(record)
    return result


def _may_start(ses: Session, who: Principal, event: s.TaskEvent) -> None:
    """startNodeTask needs WRITE in the node's (or exam's) space; another space's is missing."""
    kind = event.task_type.upper()
    orm: Any = {"NODE": m.Node, "EXAM": m.Exam}.get(kind)
    if orm is None:
        return  # launch refuses the taskType
    missing = f"{kind.lower()} {event.task_id} does not exist"
    row = ses.get(orm, event.task_id)
    if row is None:
        raise NotFound(missing)
    allow(ses, who, row.space_id, Need.WRITE, missing)


async def _require_finisher(request: Request, orch: Orch, event: s.TaskEvent) -> Principal | None:
    """None for the run's own agent (its run token), else the user calling."""
    token = bearer(request)
    run_id = event.run_parameter.get("runId")
    if token and run_id and str(run_id).isdigit():

        def check(ses: Any) -> bool:
            run = ses.get(m.Runtime, int(run_id))
            return run is not None and run.token_hash == token_hash(token)

        if await orch.db(check):
            return None
    try:
        return caller(request)
    except Unauthorized:
        raise Unauthorized("runningAutoFinish needs the run's token or a user token") from None


@router.post("/operator/create_operators", response_model=s.StartResult, dependencies=[Depends(require_user)])
async def create_operators(payload: s.CreateOperatorsPayload, orch: Orch, who: Caller) -> s.StartResult:
    """Run a training operator from a full payload (seed 000 §5.1) without a stored node.

    Needs WRITE in the payload's space (operatorTo.spaceId); without one, a site admin.
    """
    await orch.db(lambda ses: _may_create(ses, who, payload.operator_to.space_id))
    run_ids = await orch.create_operators(payload, who=who)
    return s.StartResult(run_ids=run_ids, msg=f"run {run_ids[0]} started")


def _may_create(ses: Session, who: Principal, space_id: int | None) -> None:
    space = ses.get(m.Space, space_id) if space_id is not None else None
    if space_id is not None and (space is not None or not who.admin):
        allow(ses, who, space.id if space else None, Need.WRITE, f"space {space_id} does not exist")
    elif not who.admin or who.spaces is not None:
        raise Forbidden(f"{who.name}: create_operators without operatorTo.spaceId is for site admins")
