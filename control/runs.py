"""Run records in the store: move states, record schedules, take agent reports, model versions.

Every function takes a session inside the caller's transaction; none dispatches. Runs are created
by `control.launch` (startNodeTask); views of runs are in `control.store.run_views`.
"""

from __future__ import annotations

import hmac
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from control import attempts, quota
from control import schemas as s
from control.errors import InvalidSpec, NotFound, Unauthorized
from control.pipeline import best_version
from control.secrets import Vault, token_hash
from control.states import check
from control.store import models as m
from control.store.models import utcnow

ACTIVE_STATES = (s.RunState.QUEUED.value, s.RunState.PENDING.value, s.RunState.RUNNING.value)


def get_run(*, session: Session, run_id: int) -> m.Runtime:
    run = session.get(m.Runtime, run_id)
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    return run


def agent_run(*, session: Session, run_id: int, token: str) -> m.Runtime:
    """The run whose agent holds `token`: a run that does not exist or another token is refused
    with 401 (an agent learns nothing about other runs)."""
    run = session.get(m.Runtime, run_id)
    if run is None or not hmac.compare_digest(run.token_hash, token_hash(token)):
        raise Unauthorized(f"run {run_id}: the run token is not valid")
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
        quota.crash_point("quota.before_cancel")
        quota.cancel(session, run.id)  # in the same transaction as the end: never held after it
        attempts.close(session, run, state=to.value, reason=reason)  # a failure closed it already
    session.add(
        m.RunTransition(runtime_id=run.id, from_state=current.value, to_state=to.value, reason=reason)
    )
    session.flush()


def record_schedule(
    *, session: Session, run_id: int, external_id: str, info: dict[str, Any], sched: m.Schedule | None = None
) -> None:
    """Record where the run was started; `sched`: its schedule row, when the caller has it."""
    sched = sched or schedule_of(session=session, run_id=run_id)
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
    # a succeeded run's agent is finishing its last steps (runningAutoFinish came first): letting it
    # exit 0 matters where the exit code counts (a Kubernetes Job would retry a pod that exits 143)
    return run.stop_requested or s.RunState(run.state) in (s.RunState.FAILED, s.RunState.STOPPED)


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
    best_version.refresh(session, model.id)
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
