"""Exam runs: one launch of an exam's DAG, moved on as its runs end.

`launch_exam` creates the exam run and one queued run per node (the roots come back with a
token: dispatch them now). `advance` is the engine: every queued run whose upstream runs all
ended is run (claimed: pending, a fresh token) or skipped by its node's trigger rule, and an
exam run whose runs all ended gets its end state. It runs from the reconcile loop and right
after any run ends (`control.pipeline.engine`). Every function takes a session inside the
caller's transaction; none dispatches.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Exists, Select, select
from sqlalchemy.orm import Session, aliased

from control import launch, runs
from control import schemas as s
from control.errors import InvalidSpec
from control.launch import Placer
from control.pipeline import graph
from control.schemas.pipeline import ExamRunState, TriggerRule
from control.secrets import new_token, token_hash
from control.store import models as m
from control.store import relations, repo
from control.store.models import utcnow

ENDED = frozenset(
    {s.RunState.SUCCEEDED.value, s.RunState.FAILED.value, s.RunState.STOPPED.value, s.RunState.SKIPPED.value}
)


def exam_nodes(*, session: Session, exam: m.Exam) -> list[m.Node]:
    return list(session.scalars(select(m.Node).where(m.Node.exam_id == exam.id).order_by(m.Node.id)))


def exam_edges(*, session: Session, nodes: Sequence[m.Node]) -> list[graph.Edge]:
    """The DAG's edges between `nodes` (edges to nodes of other exams do not count)."""
    ids = {n.id for n in nodes}
    return [(a, b) for a, b in relations.edges_among(session=session, node_ids=ids) if b in ids and a != b]


def check_dag(*, nodes: Sequence[m.Node], edges: Sequence[graph.Edge], field: str = "taskId") -> list[int]:
    """The node ids upstream first; a cycle is refused with its path named."""
    path = graph.cycle(edges)
    if path is not None:
        text = graph.path_text(path, {n.id: n.node_name for n in nodes})
        raise InvalidSpec(f"the exam's DAG has a cycle: {text}", field=field, field_msg=f"cycle: {text}")
    return graph.order([n.id for n in nodes], edges)


def launch_exam(
    *,
    session: Session,
    exam: m.Exam,
    event: s.TaskEvent,
    adapter: str | Placer,
    trigger: str = "manual",
    schedule_id: int | None = None,
    logical_date: datetime | None = None,
    queued: m.ExamRun | None = None,
) -> tuple[m.ExamRun, list[tuple[m.Runtime, str | None]]]:
    """Create an exam run and one queued run per node; roots come with a token (dispatch them now).

    `queued`: an exam run a schedule fired earlier and left waiting (policy queue); it is started
    as it is, keeping its id, instead of a new one being made.

    Each run's spec is a placeholder built now (it checks every node can start); the spec the
    agent gets is rebuilt from the node's definition when the run is dispatched
    (`control.pipeline.binding`).

    Raises:
        InvalidSpec: the exam has no nodes, some are not EDIT_FINISH, or its DAG has a cycle.
        Conflict: one of its nodes is already running.
    """
    nodes = exam_nodes(session=session, exam=exam)
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
    launch.refuse_busy(session=session, nodes=nodes)
    edges = exam_edges(session=session, nodes=nodes)
    by_id = {n.id: n for n in nodes}
    ordered = check_dag(nodes=nodes, edges=edges)
    ups = graph.upstream_of(by_id, edges)
    wiring = relations.wiring_of(session=session, node_ids=ordered)
    plan = [
        (by_id[i], launch.build_task_spec(session=session, node=by_id[i], event=event, wiring=wiring[i]))
        for i in ordered
    ]
    if queued is None:
        exam_run = m.ExamRun(space_id=exam.space_id, exam_id=exam.id, exam_name=exam.exam_name)
        session.add(exam_run)
    else:
        exam_run = queued
    exam_run.state = ExamRunState.RUNNING.value
    exam_run.trigger, exam_run.schedule_id, exam_run.logical_date = trigger, schedule_id, logical_date
    exam_run.reason = f"started ({trigger})"
    session.flush()
    run_of: dict[int, m.Runtime] = {}
    created: list[tuple[m.Runtime, str | None]] = []
    for node, spec in plan:  # every run is inserted with one flush, then finished
        spec.exam_run_id = exam_run.id
        spec.logical_date = logical_date.isoformat() if logical_date else None
        up_names = ", ".join(by_id[u].node_name for u in ups[node.id])
        reason = f"waiting for {up_names}" if up_names else f"startNodeTask (exam {exam.exam_name})"
        run, token = launch.queue_runtime(
            session=session,
            spec=spec,
            space_id=node.space_id,
            node_id=node.id,
            adapter=adapter,
            reason=reason,
        )
        run.exam_id, run.exam_run_id = exam.id, exam_run.id
        run_of[node.id] = run
        created.append((run, None if ups[node.id] else token))
    session.flush()
    for node, spec in plan:
        up_ids = [run_of[u].id for u in ups[node.id]]
        launch.finish_runtime(session=session, run=run_of[node.id], spec=spec, upstream_run_ids=up_ids)
    session.flush()
    return exam_run, created


def claim(*, session: Session, run: m.Runtime, reason: str) -> str:
    """Make a queued run pending with a fresh token (its dispatcher gets the token)."""
    token = new_token()
    run.token_hash = token_hash(token)
    runs.transition(session=session, run=run, to=s.RunState.PENDING, reason=reason)
    return token


def advance(*, session: Session, now: datetime | None = None) -> list[tuple[int, str]]:
    """Decide every queued exam run whose upstream runs all ended; settle finished exam runs.

    A skip ends a run, so its downstream runs may be decided too: passes repeat until one skips
    nothing, and a skip cascades down a chain in one call. Queued runs with `retry_at` wait for
    their next attempt (`retries`).

    Returns:
        `(run id, run token)` of each claimed run: dispatch them.
    """
    ready: list[tuple[int, str]] = []
    while _decide(session=session, ready=ready):
        pass
    settle(session=session, now=now)
    return ready


def _decide(*, session: Session, ready: list[tuple[int, str]]) -> int:
    """One pass over the decidable runs: claim (into `ready`) or skip each; how many it skipped."""
    waiting = session.execute(decidable()).all()
    ids = sorted({u for w in waiting for u in w.upstream_run_ids or []})
    known: dict[int, graph.Upstream] = {}
    for at in range(0, len(ids), 500):
        for row in session.execute(
            select(m.Runtime.id, m.Runtime.node_name, m.Runtime.state, m.Runtime.reason).where(
                m.Runtime.id.in_(ids[at : at + 500])
            )
        ):
            known[row.id] = graph.Upstream(row.node_name, row.state, row.reason or "")
    rules = _rules(session=session, node_ids={w.node_id for w in waiting if w.node_id is not None})
    skipped = 0
    for w in waiting:
        up_ids = list(dict.fromkeys(w.upstream_run_ids or []))
        ups = [known[u] for u in up_ids if u in known]
        decision = graph.decide(
            rules.get(w.node_id or 0, TriggerRule.ALL_SUCCESS.value), ups, missing=len(up_ids) - len(ups)
        )
        if decision.action == "wait":
            continue
        run = runs.get_run(session=session, run_id=w.id)
        if run.state != s.RunState.QUEUED.value:
            continue
        if decision.action == "skip":
            runs.transition(session=session, run=run, to=s.RunState.SKIPPED, reason=decision.reason)
            skipped += 1
        else:
            ready.append((run.id, claim(session=session, run=run, reason=decision.reason)))
    session.flush()
    return skipped


def has_upstream() -> Exists:
    """True for a run that waits for upstream runs (an exam's non-root run), in a query on runtimes."""
    return select(m.RunUpstream.upstream_id).where(m.RunUpstream.runtime_id == m.Runtime.id).exists()


@functools.cache
def decidable() -> Select[int, list[int] | None, int | None]:
    """The queued runs of exam runs (not roots, not waiting for a retry) whose upstream runs have
    all ended, in id order: every trigger rule waits until then. An upstream run that no longer
    exists does not hold its downstream run back (`graph.decide` counts it as missing)."""
    edge, up = m.RunUpstream, aliased(m.Runtime)
    held = (
        select(edge.upstream_id)
        .join(up, up.id == edge.upstream_id)
        .where(edge.runtime_id == m.Runtime.id, up.state.not_in(list(ENDED)))
        .exists()
    )
    return (
        select(m.Runtime.id, m.Runtime.upstream_run_ids, m.Runtime.node_id)
        .where(
            m.Runtime.state == s.RunState.QUEUED.value,
            m.Runtime.exam_id.is_not(None),
            m.Runtime.retry_at.is_(None),
            has_upstream(),
            ~held,
        )
        .order_by(m.Runtime.id)
    )


def _rules(*, session: Session, node_ids: set[int]) -> dict[int, str]:
    if not node_ids:
        return {}
    rows = session.execute(select(m.Node.id, m.Node.trigger_rule).where(m.Node.id.in_(node_ids)))
    return {i: rule or TriggerRule.ALL_SUCCESS.value for i, rule in rows}


@functools.cache
def _settleable() -> Select[m.ExamRun]:
    under_way = (
        select(m.Runtime.id)
        .where(m.Runtime.exam_run_id == m.ExamRun.id, m.Runtime.state.not_in(list(ENDED)))
        .exists()
    )
    return select(m.ExamRun).where(m.ExamRun.state == ExamRunState.RUNNING.value, ~under_way)


def settle(
    *, session: Session, now: datetime | None = None, exam_run_ids: Sequence[int] | None = None
) -> None:
    """Give every running exam run whose runs all ended its end state: failed when a run failed,
    else stopped when one was stopped, else succeeded (skips do not fail an exam run)."""
    q = _settleable()  # running exam runs with no run still under way
    if exam_run_ids is not None:
        q = q.where(m.ExamRun.id.in_(list(exam_run_ids)))
    open_runs = {er.id: er for er in session.scalars(q)}
    if not open_runs:
        return
    states: dict[int, list[tuple[str, str]]] = {i: [] for i in open_runs}
    for er_id, state, name in session.execute(
        select(m.Runtime.exam_run_id, m.Runtime.state, m.Runtime.node_name).where(
            m.Runtime.exam_run_id.in_(list(open_runs))
        )
    ):
        if er_id is not None:
            states[er_id].append((state, name))
    for er_id, er in open_runs.items():
        got = states[er_id]
        if not got or any(state not in ENDED for state, _ in got):
            continue
        failed = [name for state, name in got if state == s.RunState.FAILED.value]
        stopped = [name for state, name in got if state == s.RunState.STOPPED.value]
        if failed:
            er.state, er.reason = ExamRunState.FAILED.value, f"failed: {', '.join(failed)}"
        elif stopped:
            er.state, er.reason = ExamRunState.STOPPED.value, f"stopped: {', '.join(stopped)}"
        else:
            er.state, er.reason = ExamRunState.SUCCEEDED.value, "every node succeeded or was skipped"
        er.finished_at = now or utcnow()
    session.flush()


def runs_of(*, session: Session, exam_run_id: int) -> list[m.Runtime]:
    return list(
        session.scalars(select(m.Runtime).where(m.Runtime.exam_run_id == exam_run_id).order_by(m.Runtime.id))
    )


def get_exam_run(*, session: Session, exam_run_id: int) -> m.ExamRun:
    row: m.ExamRun = repo.get_by_id(session=session, orm=m.ExamRun, ident=exam_run_id, label="exam run")
    return row


def stop_exam_run(*, session: Session, exam_run: m.ExamRun, reason: str) -> list[int]:
    """Stop every unfinished run of the exam run; returns the run ids whose targets must be stopped."""
    targets: list[int] = []
    for run in runs_of(session=session, exam_run_id=exam_run.id):
        if run.state in ENDED:
            continue
        sched = runs.schedule_of(session=session, run_id=run.id)
        run.stop_requested = True
        runs.transition(session=session, run=run, to=s.RunState.STOPPED, reason=reason)
        if sched is not None and sched.external_id:
            targets.append(run.id)
    if exam_run.state in (ExamRunState.RUNNING.value, ExamRunState.QUEUED.value):
        exam_run.state = ExamRunState.STOPPED.value
        exam_run.reason = reason
        exam_run.finished_at = utcnow()
    session.flush()
    return targets
