"""Launching runs in the store: freeze a task spec and create the runtimes of a node or an exam.

An exam launch (startNodeTask with taskType EXAM) is an exam run (`control.pipeline.exam_runs`):
one run per node, upstream first; runs with upstream runs wait `queued` until the exam engine
(`exam_runs.advance`) claims or skips them. Every function takes a session inside the caller's
transaction; none dispatches. The adapter of each run is chosen by the caller's `Placer` (the planner) before
anything is stored, so an unconfigured runtime pattern leaves no run behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from control import schemas as s
from control.errors import Conflict, InvalidSpec
from control.secrets import new_token, token_hash
from control.store import models as m
from control.store import relations, repo


def connection_spec(conn: m.Connection) -> s.ConnectionSpec:
    """The connection as the agent gets it; the password stays encrypted until the agent fetches it."""
    return s.ConnectionSpec(
        connect_name=conn.connect_name,
        connect_type=s.ConnectType(conn.connect_type),
        connect_addr=conn.connect_addr,
        connect_port=conn.connect_port,
        connect_account=conn.connect_account,
        connect_password=conn.connect_password_enc or "",
        connect_space=conn.connect_space,
        colony_type=s.ColonyType(conn.colony_type),
        source_conf=conn.source_conf or {},
    )


def build_task_spec(
    *, session: Session, node: m.Node, event: s.TaskEvent, wiring: relations.Wiring | None = None
) -> s.TaskSpec:
    """The node's spec as its definition is now. `wiring`: its relation and data source ids when
    the caller loaded them for many nodes at once (`relations.wiring_of`)."""
    wiring = wiring or relations.wiring_of(session=session, node_ids=[node.id])[node.id]
    rel, source_ids = wiring.relation, wiring.source_ids
    if rel is None:
        raise InvalidSpec(f"node {node.node_name!r} has no relation: create it with createNodeRelation")
    op = session.get(m.Operator, rel.operator_id)
    assert op is not None
    sources = []
    for sid in source_ids:
        src = session.get(m.DataSource, sid)
        conn = session.get(m.Connection, src.connection_id) if src else None
        if src is None or conn is None:
            raise InvalidSpec(f"node {node.node_name!r} names data source {sid}, which no longer exists")
        fields = s.SourceSpec.fields_of(src)
        sources.append(s.SourceSpec.model_validate({**fields, "connection": connection_spec(conn)}))
    model = None
    if rel.model_id is not None:
        mod = session.get(m.Model, rel.model_id)
        assert mod is not None
        conn = session.get(m.Connection, mod.connect_id) if mod.connect_id else None
        model = s.ModelSpec(
            model_id=mod.id,
            model_name=mod.model_name,
            model_address=mod.model_address,
            connection=connection_spec(conn) if conn else None,
        )
    si = session.get(m.ServiceInfo, rel.service_info_id) if rel.service_info_id else None
    op_fields = s.OperatorSpec.fields_of(op)
    op_fields["operator_epoch"] = max(op.operator_epoch, 1)
    return s.TaskSpec(
        run_id=0,
        node_id=node.id,
        node_name=node.node_name,
        space_id=node.space_id,
        operator=s.OperatorSpec.model_validate(op_fields),
        sources=sorted(sources, key=lambda x: x.order),
        model=model,
        service_info=(s.ServiceInfoSpec.model_validate(s.ServiceInfoSpec.fields_of(si)) if si else None),
        envs=event.envs,
        run_parameter=event.run_parameter,
    )


Placer = Callable[[Session, s.TaskSpec], str]
"""Chooses the adapter of a run from its spec (`Orchestrator.place_run`)."""


def new_runtime(
    *,
    session: Session,
    spec: s.TaskSpec,
    space_id: int | None,
    node_id: int | None,
    adapter: str | Placer,
    reason: str,
    exam_id: int | None = None,
    upstream_run_ids: Sequence[int] = (),
) -> tuple[m.Runtime, str]:
    """Create a queued runtime and its schedule record; returns (runtime, run token).

    Args:
        exam_id: the exam launch the run belongs to.
        upstream_run_ids: runs that must succeed first (the run waits queued until then).
    """
    run, token = queue_runtime(
        session=session, spec=spec, space_id=space_id, node_id=node_id, adapter=adapter, reason=reason
    )
    run.exam_id = exam_id
    session.flush()
    finish_runtime(session=session, run=run, spec=spec, upstream_run_ids=upstream_run_ids)
    session.flush()
    return run, token


def queue_runtime(
    *,
    session: Session,
    spec: s.TaskSpec,
    space_id: int | None,
    node_id: int | None,
    adapter: str | Placer,
    reason: str,
) -> tuple[m.Runtime, str]:
    """The first half of `new_runtime`: the queued runtime, added but not flushed, and its token.
    Many runs created together are flushed at once, then each gets `finish_runtime`."""
    if not isinstance(adapter, str):
        adapter = adapter(session, spec)  # refuses an unconfigured pattern before anything is stored
    token = new_token()
    node = session.get(m.Node, node_id) if node_id is not None else None
    run = m.Runtime(
        space_id=space_id,
        node_id=node_id,
        node_name=spec.node_name,
        operator_runtime_type=spec.operator.operator_runtime_type.value,
        adapter=adapter,
        state=s.RunState.QUEUED.value,
        reason=reason,
        attempt=1,  # attempts count within the run (`control.retries`), not across a node's runs
        max_attempts=1 + (node.max_retries if node is not None else 0),
        token_hash=token_hash(token),
        spec={},
        envs=spec.envs,
        run_parameter=spec.run_parameter,
    )
    session.add(run)
    return run, token


def finish_runtime(
    *, session: Session, run: m.Runtime, spec: s.TaskSpec, upstream_run_ids: Sequence[int] = ()
) -> None:
    """The second half of `new_runtime`, once `run` has its id: its spec, first transition and
    schedule record, and (a run of an exam) the runs it waits for."""
    spec.run_id = run.id
    spec.attempt = run.attempt
    run.spec = spec.wire()
    session.add(m.RunTransition(runtime_id=run.id, from_state=None, to_state=run.state, reason=run.reason))
    session.add(m.Schedule(runtime_id=run.id, adapter=run.adapter))
    if run.exam_id is not None:
        ups = list(dict.fromkeys(upstream_run_ids))
        run.upstream_run_ids = ups
        session.add_all(m.RunUpstream(runtime_id=run.id, upstream_id=u) for u in ups)


def start_task(
    *, session: Session, event: s.TaskEvent, adapter: str | Placer
) -> list[tuple[m.Runtime, str | None]]:
    """startNodeTask: the runs to create, each with its token when it is to be dispatched now.

    Raises:
        InvalidSpec: an unknown taskType, or an exam that cannot start (see `start_exam`).
    """
    kind = event.task_type.upper()
    if kind == "NODE":
        run, token = start_node(session=session, event=event, adapter=adapter)
        return [(run, token)]
    if kind == "EXAM":
        return start_exam(session=session, event=event, adapter=adapter)
    raise InvalidSpec(
        f"taskType {event.task_type!r} is not one of NODE, EXAM",
        field="taskType",
        field_msg="valid values are NODE, EXAM",
    )


def refuse_busy(*, session: Session, nodes: Sequence[m.Node]) -> None:
    """Refuse (409) when one of `nodes` has a run that has not ended yet."""
    by_id = {n.id: n for n in nodes}
    ids = list(by_id)
    for at in range(0, len(ids), 500):
        busy = session.execute(
            select(m.Runtime.node_id, m.Runtime.id)
            .where(
                m.Runtime.node_id.in_(ids[at : at + 500]),
                m.Runtime.state.in_(
                    [s.RunState.QUEUED.value, s.RunState.PENDING.value, s.RunState.RUNNING.value]
                ),
            )
            .order_by(m.Runtime.id)
            .limit(1)
        ).first()
        if busy is not None:
            name = by_id[busy.node_id].node_name
            raise Conflict(f"node {name!r} is already running as run {busy.id}: stop it first")


def start_node(*, session: Session, event: s.TaskEvent, adapter: str | Placer) -> tuple[m.Runtime, str]:
    """Create the run of one node (taskType NODE)."""
    if event.task_type.upper() != "NODE":
        raise InvalidSpec(f"taskType {event.task_type!r}: start it with start_task", field="taskType")
    node = repo.get_by_id(session=session, orm=m.Node, ident=event.task_id, label="node")
    if node.node_status != s.NodeStatus.EDIT_FINISH.value:
        raise Conflict(
            f"node {node.node_name!r} is {node.node_status}, not EDIT_FINISH: "
            "finish editing it before starting"
        )
    if event.operator_runtime_type and event.operator_runtime_type.value != node.operator_runtime_type:
        raise InvalidSpec(
            f"operatorRuntimeType {event.operator_runtime_type.value} does not match node "
            f"{node.node_name!r}, which is {node.operator_runtime_type}",
            field="operatorRuntimeType",
            field_msg=f"node {node.node_name!r} is {node.operator_runtime_type}",
        )
    refuse_busy(session=session, nodes=[node])
    spec = build_task_spec(session=session, node=node, event=event)
    return new_runtime(
        session=session,
        spec=spec,
        space_id=node.space_id,
        node_id=node.id,
        adapter=adapter,
        reason="startNodeTask",
    )


def start_exam(
    *, session: Session, event: s.TaskEvent, adapter: str | Placer
) -> list[tuple[m.Runtime, str | None]]:
    """startNodeTask with taskType EXAM: a manual exam run (`control.pipeline.exam_runs.launch_exam`).

    Returns its runs upstream first, roots with tokens (dispatch them now); the others wait
    `queued` ("waiting for <upstream names>") with their upstream run ids recorded.

    Raises:
        NotFound: no such exam.
        InvalidSpec: the exam has no nodes, some are not EDIT_FINISH (named), or a cycle.
        Conflict: one of its nodes is already running.
    """
    from control.pipeline import exam_runs

    exam = repo.get_by_id(session=session, orm=m.Exam, ident=event.task_id, label="exam")
    _, created = exam_runs.launch_exam(session=session, exam=exam, event=event, adapter=adapter)
    return created
