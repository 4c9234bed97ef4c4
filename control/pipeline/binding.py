"""Late binding: a node's run gets its task spec from the node's definition as it is at dispatch.

An exam run is created with placeholder specs; each run's real spec is built when it is
dispatched, so an evaluation node sees the model version its upstream run just trained (its
inputs are resolved then) and a resumed node runs the operator's code as it is now. What the
run already holds stays: its id, attempt, envs, runParameter, exam run, logical date and the
model version reserved for it.
"""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.orm import Session

from control import launch, runs
from control import schemas as s
from control.errors import InvalidSpec
from control.pipeline import artifacts
from control.store import models as m


def bind(*, session: Session, run: m.Runtime) -> s.TaskSpec:
    """The run's spec rebuilt from its node's current definition, inputs resolved; stored in `run.spec`.

    A run without a node (create_operators) keeps the spec it was created with.

    Raises:
        InvalidSpec: the node can no longer be built (its relation or a data source is gone), an
            input names nothing its upstream runs left, or the run's stored spec is not valid.
    """
    try:
        old = s.TaskSpec.model_validate(run.spec)
    except ValidationError as exc:  # written by something other than control: the run cannot start
        raise InvalidSpec(
            f"run {run.id}: its stored spec is not valid ({exc.error_count()} error(s)): start its node again"
        ) from exc
    node = session.get(m.Node, run.node_id) if run.node_id is not None else None
    if node is None:
        return old
    sched = runs.schedule_of(session=session, run_id=run.id)
    if sched is not None and (sched.info or {}).get("waiting"):
        return old  # bound when this attempt was first dispatched; it waits for resources as it asked

    event = s.TaskEvent(task_id=node.id, envs=dict(old.envs), run_parameter=dict(old.run_parameter))
    spec = launch.build_task_spec(session=session, node=node, event=event)
    spec.run_id = run.id
    spec.attempt = run.attempt
    spec.exam_run_id = run.exam_run_id if run.exam_run_id is not None else old.exam_run_id
    spec.logical_date = old.logical_date
    if old.model is not None and spec.model is not None and old.model.model_id == spec.model.model_id:
        spec.model.model_version = old.model.model_version
    artifacts.resolve_inputs(session=session, run=run, spec=spec)
    run.spec = spec.wire()
    return spec


def refuse(session: Session, run_id: int, reason: str) -> None:
    """Fail a run whose spec could not be built at dispatch (it never started)."""
    run = runs.get_run(session=session, run_id=run_id)
    if s.RunState(run.state).is_terminal():
        return
    if run.state == s.RunState.QUEUED.value:
        runs.transition(session=session, run=run, to=s.RunState.PENDING, reason="dispatching")
    runs.transition(session=session, run=run, to=s.RunState.FAILED, reason=reason)
