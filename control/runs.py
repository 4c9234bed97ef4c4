"""Run records in the store: freeze a task spec, create runtimes, move states, take agent reports.

An exam launch (startNodeTask with taskType EXAM) creates one run per node in nextNodeId order;
runs with upstream runs wait `queued` until the reconcile loop (`control.reconcile.judge_waiting`)
claims or stops them. Every function takes a session inside the caller's transaction; none dispatches.
Views of runs are in `control.store.run_views`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from control import schemas as s
from control.errors import Conflict, InvalidSpec, NotFound
from control.secrets import Vault, new_token, token_hash
from control.states import check
from control.store import models as m
from control.store import relations, repo
from control.store.models import utcnow

ACTIVE_STATES = (s.RunState.QUEUED.value, s.RunState.PENDING.value, s.RunState.RUNNING.value)


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


def build_task_spec(*, session: Session, node: m.Node, event: s.TaskEvent) -> s.TaskSpec:
    rel = relations.relation_of(session=session, node_id=node.id)
    if rel is None:
        raise InvalidSpec(f"node {node.node_name!r} has no relation: create it with createNodeRelation")
    op = session.get(m.Operator, rel.operator_id)
    assert op is not None
    sources = []
    for sid in relations.relation_source_ids(session=session, relation_id=rel.id):
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
    if not isinstance(adapter, str):
        adapter = adapter(session, spec)  # refuses an unconfigured pattern before anything is stored
    token = new_token()
    attempt = 1
    if node_id is not None:
        last = session.scalar(
            select(m.Runtime.attempt).where(m.Runtime.node_id == node_id).order_by(m.Runtime.id.desc())
        )
        attempt = (last or 0) + 1
    run = m.Runtime(
        space_id=space_id,
        node_id=node_id,
        node_name=spec.node_name,
        operator_runtime_type=spec.operator.operator_runtime_type.value,
        adapter=adapter,
        state=s.RunState.QUEUED.value,
        reason=reason,
        attempt=attempt,
        token_hash=token_hash(token),
        spec={},
        envs=spec.envs,
        run_parameter=spec.run_parameter,
        exam_id=exam_id,
        upstream_run_ids=list(upstream_run_ids) if exam_id is not None else None,
    )
    session.add(run)
    session.flush()
    spec.run_id = run.id
    spec.attempt = attempt
    run.spec = spec.wire()
    session.add(m.RunTransition(runtime_id=run.id, from_state=None, to_state=run.state, reason=reason))
    session.add(m.Schedule(runtime_id=run.id, adapter=adapter))
    session.flush()
    return run, token


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


def _refuse_busy(*, session: Session, node: m.Node) -> None:
    busy = session.scalar(
        select(m.Runtime.id).where(
            m.Runtime.node_id == node.id,
            m.Runtime.state.in_(
                [s.RunState.QUEUED.value, s.RunState.PENDING.value, s.RunState.RUNNING.value]
            ),
        )
    )
    if busy is not None:
        raise Conflict(f"node {node.node_name!r} is already running as run {busy}: stop it first")


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
    _refuse_busy(session=session, node=node)
    spec = build_task_spec(session=session, node=node, event=event)
    return new_runtime(
        session=session,
        spec=spec,
        space_id=node.space_id,
        node_id=node.id,
        adapter=adapter,
        reason="startNodeTask",
    )


def exam_order(*, session: Session, nodes: Sequence[m.Node]) -> list[tuple[m.Node, list[m.Node]]]:
    """`nodes` in topological order of their nextNodeId edges, each with its upstream nodes.

    Only edges between `nodes` count; ties keep id order, so the order is stable.
    """
    by_id = {n.id: n for n in nodes}
    upstream: dict[int, list[int]] = {n.id: [] for n in nodes}
    for n in nodes:
        rel = relations.relation_of(session=session, node_id=n.id)
        if rel is not None and rel.next_node_id in by_id and rel.next_node_id != n.id:
            upstream[rel.next_node_id].append(n.id)
    done: list[int] = []
    left = sorted(by_id)
    while left:
        ready = [i for i in left if all(u in done for u in upstream[i])]
        if not ready:
            names = ", ".join(by_id[i].node_name for i in left)
            raise InvalidSpec(
                f"the nodes {names} form a cycle", field="taskId", field_msg="the DAG has a cycle"
            )
        done += ready
        left = [i for i in left if i not in ready]
    return [(by_id[i], [by_id[u] for u in upstream[i]]) for i in done]


def start_exam(
    *, session: Session, event: s.TaskEvent, adapter: str | Placer
) -> list[tuple[m.Runtime, str | None]]:
    """Create one run per node of the exam, roots first (with tokens: dispatch them now).

    Every other run waits `queued` ("waiting for <upstream names>") with its upstream run ids
    recorded, so the launch survives a control restart.

    Raises:
        NotFound: no such exam.
        InvalidSpec: the exam has no nodes, or some are not EDIT_FINISH (named).
        Conflict: one of its nodes is already running.
    """
    exam = repo.get_by_id(session=session, orm=m.Exam, ident=event.task_id, label="exam")
    nodes = session.scalars(select(m.Node).where(m.Node.exam_id == exam.id).order_by(m.Node.id)).all()
    if not nodes:
        raise InvalidSpec(
            f"exam {exam.exam_name!r} has no nodes: set examId {exam.id} on the nodes it runs",
            field="taskId",
            field_msg=f"exam {exam.exam_name!r} has no nodes",
        )
    unfinished = [n.node_name for n in nodes if n.node_status != s.NodeStatus.EDIT_FINISH.value]
    if unfinished:
        names = ", ".join(repr(n) for n in unfinished)
        raise InvalidSpec(
            f"exam {exam.exam_name!r} cannot start: node(s) {names} not EDIT_FINISH: finish editing them",
            field="taskId",
            field_msg=f"node(s) {names} not EDIT_FINISH",
        )
    for node in nodes:
        _refuse_busy(session=session, node=node)
    plan = [
        (node, ups, build_task_spec(session=session, node=node, event=event))
        for node, ups in exam_order(session=session, nodes=nodes)
    ]
    run_of: dict[int, m.Runtime] = {}
    created: list[tuple[m.Runtime, str | None]] = []
    for node, ups, spec in plan:
        up_runs = [run_of[u.id] for u in ups]
        reason = (
            f"waiting for {', '.join(r.node_name for r in up_runs)}"
            if up_runs
            else f"startNodeTask (exam {exam.exam_name})"
        )
        run, token = new_runtime(
            session=session,
            spec=spec,
            space_id=node.space_id,
            node_id=node.id,
            adapter=adapter,
            reason=reason,
            exam_id=exam.id,
            upstream_run_ids=[r.id for r in up_runs],
        )
        run_of[node.id] = run
        created.append((run, None if up_runs else token))
    return created


def get_run(*, session: Session, run_id: int) -> m.Runtime:
    run = session.get(m.Runtime, run_id)
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    return run


def transition(*, session: Session, run: m.Runtime, to: s.RunState, reason: str) -> None:
    """Move `run` to `to` if the state machine allows it, recording the reason."""
    current = s.RunState(run.state)
    if current == to:
        return
    check(current, to)
    now = utcnow()
    run.state = to.value
    run.reason = reason
    if to == s.RunState.RUNNING and run.started_at is None:
        run.started_at = now
        run.heartbeat_at = now
    if to.is_terminal():
        run.finished_at = now
        if run.started_at is None:
            run.started_at = now
    session.add(
        m.RunTransition(runtime_id=run.id, from_state=current.value, to_state=to.value, reason=reason)
    )
    session.flush()


def record_schedule(*, session: Session, run_id: int, external_id: str, info: dict[str, Any]) -> None:
    sched = session.scalar(
        select(m.Schedule).where(m.Schedule.runtime_id == run_id).order_by(m.Schedule.id.desc())
    )
    if sched is not None:
        sched.external_id = external_id
        sched.info = info
        sched.last_sync_at = utcnow()


def note(*, session: Session, run: m.Runtime, reason: str) -> None:
    """Record a new reason for the state the run is in (e.g. started after waiting for a GPU)."""
    run.reason = reason
    session.add(m.RunTransition(runtime_id=run.id, from_state=run.state, to_state=run.state, reason=reason))
    session.flush()


def next_model_version(*, session: Session, spec: s.TaskSpec) -> str:
    """The version a run of `spec` registers (ATOM_MODEL_VERSION), reserved in its spec at dispatch.

    One past the highest version of the model and every version reserved by its other live runs;
    a run that already holds a reservation (or a registered version) keeps it.
    """
    if spec.model is None or spec.model.model_id is None:
        return ""
    run = session.get(m.Runtime, spec.run_id)
    if run is None:
        return ""
    mine = session.scalar(select(m.ModelVersion.model_version).where(m.ModelVersion.runtime_id == run.id))
    reserved = str((run.spec.get("model") or {}).get("modelVersion") or "")
    if mine or reserved:
        return str(mine or reserved)
    taken = [
        int(v)
        for v in session.scalars(
            select(m.ModelVersion.model_version).where(m.ModelVersion.model_id == spec.model.model_id)
        )
        if str(v).isdigit()
    ]
    for other in session.scalars(
        select(m.Runtime).where(m.Runtime.state.in_(ACTIVE_STATES), m.Runtime.id != run.id)
    ):
        model = (other.spec or {}).get("model") or {}
        if model.get("modelId") == spec.model.model_id and str(model.get("modelVersion", "")).isdigit():
            taken.append(int(model["modelVersion"]))
    version = str(max(taken, default=0) + 1)
    run.spec = {**run.spec, "model": {**run.spec["model"], "modelVersion": version}}
    return version


def schedule_of(*, session: Session, run_id: int) -> m.Schedule | None:
    return session.scalar(
        select(m.Schedule).where(m.Schedule.runtime_id == run_id).order_by(m.Schedule.id.desc())
    )


def heartbeat(*, session: Session, run: m.Runtime, beat: s.Heartbeat) -> bool:
    """Record a heartbeat; returns True when the agent should stop."""
    run.heartbeat_at = utcnow()
    if beat.progress is not None:
        run.progress = beat.progress
    if beat.stage is not None:
        run.stage = beat.stage[:64]
    if beat.rows_read is not None:
        run.rows_read = beat.rows_read
    if beat.sources:
        known = {str(src.get("sourceName")) for src in (run.spec or {}).get("sources", [])}
        latest = dict(run.source_progress or {})
        latest.update({name: p.wire() for name, p in beat.sources.items() if name in known})
        run.source_progress = latest  # a new dict: the JSON column sees the change
    return run.stop_requested or s.RunState(run.state).is_terminal()


def add_metrics(*, session: Session, run: m.Runtime, report: s.MetricReport) -> None:
    """Store a metric report; a metric already stored for this step is kept as it is.

    An agent retries a report whose answer it did not get, so the same (run, step, name) may
    arrive twice: the repeat changes nothing.
    """
    now = utcnow()
    stored = set(
        session.scalars(
            select(m.RunMetric.name).where(m.RunMetric.runtime_id == run.id, m.RunMetric.step == report.step)
        )
    )
    for name, value in report.values.items():
        if name[:128] in stored:
            continue
        stored.add(name[:128])
        session.add(
            m.RunMetric(runtime_id=run.id, step=report.step, name=name[:128], value=float(value), at=now)
        )
    run.heartbeat_at = now


def register_model_version(
    *, session: Session, run: m.Runtime, report: s.ModelVersionReport
) -> m.ModelVersion:
    """Record the run's model version once (a retried call returns the same version)."""
    existing = session.scalar(select(m.ModelVersion).where(m.ModelVersion.runtime_id == run.id))
    if existing is not None:
        return existing
    spec = s.TaskSpec.model_validate(run.spec)
    if spec.model is None or spec.model.model_id is None:
        raise InvalidSpec(f"run {run.id} has no model bound to it: add modelID to the node relation")
    model = session.get(m.Model, spec.model.model_id)
    if model is None:
        raise NotFound(f"model {spec.model.model_name!r} no longer exists")
    taken = set(
        session.scalars(select(m.ModelVersion.model_version).where(m.ModelVersion.model_id == model.id))
    )
    wanted = spec.model.model_version  # reserved at dispatch (the run's ATOM_MODEL_VERSION)
    if not wanted or wanted in taken:
        wanted = str(max((int(v) for v in taken if str(v).isdigit()), default=0) + 1)
    version = m.ModelVersion(
        model_id=model.id,
        model_version=wanted,
        model_score=report.model_score,
        model_address=report.model_address,
        runtime_id=run.id,
        operator_result=report.operator_result.value,
        metrics=report.metrics,
        serving_object=report.serving_object,
    )
    session.add(version)
    model.model_version = version.model_version
    model.model_score = report.model_score
    model.model_address = report.model_address
    model.runtime_id = run.id
    model.node_id = run.node_id
    model.model_status = "registered"
    session.flush()
    return version


def run_for_finish(*, session: Session, event: s.TaskEvent) -> m.Runtime:
    """The run a runningAutoFinish call means: runParameter.runId, else the node's latest run."""
    run_id = event.run_parameter.get("runId")
    if run_id:
        if not str(run_id).isdigit():
            raise InvalidSpec(f"runParameter.runId {run_id!r} is not a run id")
        run = get_run(session=session, run_id=int(run_id))
        if run.node_id is not None and run.node_id != event.task_id and event.task_id != run.id:
            raise InvalidSpec(f"run {run.id} does not belong to node {event.task_id}")
        return run
    latest = session.scalar(
        select(m.Runtime).where(m.Runtime.node_id == event.task_id).order_by(m.Runtime.id.desc())
    )
    if latest is None:
        raise NotFound(f"node {event.task_id} has no run to finish")
    return latest


def decrypted(conn: s.ConnectionSpec, vault: Vault) -> s.ConnectionSpec:
    """The connection with its stored (encrypted) password decrypted, in place."""
    if conn.connect_password:
        conn.connect_password = vault.decrypt(conn.connect_password)
    return conn


def agent_spec(*, run: m.Runtime, vault: Vault) -> s.TaskSpec:
    """The frozen spec with passwords decrypted: only ever sent to the run's own agent."""
    spec = s.TaskSpec.model_validate(run.spec)
    for src in spec.sources:
        decrypted(src.connection, vault)
    if spec.model and spec.model.connection:
        decrypted(spec.model.connection, vault)
    return spec
