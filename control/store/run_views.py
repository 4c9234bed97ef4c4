"""What users see of runs: `RunOut` (one, or a page in two queries) and `RunSpecView` (no passwords).

Keyword-only functions that take a session, like `repo.view` for the static entities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from control import schemas as s
from control.errors import NotFound
from control.store import models as m

#: sourceConf keys whose values are credentials: shown as "***" in a run's spec
SECRET_HINTS = ("password", "secret", "token", "credential", "accesskey", "access_key")


def _external_ids(*, session: Session, run_ids: Sequence[int]) -> dict[int, str | None]:
    """Each run's latest schedule external id, in one query."""
    if not run_ids:
        return {}
    rows = session.execute(
        select(m.Schedule.runtime_id, m.Schedule.external_id)
        .where(m.Schedule.runtime_id.in_(run_ids))
        .order_by(m.Schedule.id)
    )
    return {run_id: external_id for run_id, external_id in rows}  # the latest schedule wins


def _out(run: m.Runtime, external_id: str | None) -> s.RunOut:
    return s.RunOut(
        id=run.id,
        node_id=run.node_id,
        node_name=run.node_name,
        space_id=run.space_id,
        operator_runtime_type=s.OperatorRuntimeType(run.operator_runtime_type),
        adapter=run.adapter,
        state=s.RunState(run.state),
        reason=run.reason,
        attempt=run.attempt,
        max_attempts=run.max_attempts,
        retry_at=run.retry_at,
        failure_class=run.failure_class,
        exam_run_id=run.exam_run_id,
        cache_key=run.cache_key,
        progress=run.progress,
        stage=run.stage,
        rows_read=run.rows_read,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        heartbeat_at=run.heartbeat_at,
        external_id=external_id,
        exam_id=run.exam_id,
        upstream_run_ids=list(run.upstream_run_ids or []),
    )


def views(*, session: Session, runs: Sequence[m.Runtime], dispatch: bool = True) -> list[s.RunOut]:
    """`RunOut` of each run (no history), with one query for all their schedules; `dispatch=False`
    leaves out where each was started (`externalId`) and that query."""
    external = _external_ids(session=session, run_ids=[r.id for r in runs]) if dispatch else {}
    return [_out(r, external.get(r.id)) for r in runs]


def view(*, session: Session, run: m.Runtime, history: bool = False) -> s.RunOut:
    """`RunOut` of one run; `history` adds every recorded transition."""
    out = _out(run, _external_ids(session=session, run_ids=[run.id]).get(run.id))
    sched = session.scalar(
        select(m.Schedule).where(m.Schedule.runtime_id == run.id).order_by(m.Schedule.id.desc())
    )
    if sched is not None:
        out.dispatch = {k: v for k, v in (sched.info or {}).items() if k != "command"}
    if history:
        rows = session.scalars(
            select(m.RunTransition).where(m.RunTransition.runtime_id == run.id).order_by(m.RunTransition.id)
        )
        out.history = [
            s.Transition(
                from_state=s.RunState(t.from_state) if t.from_state else None,
                to_state=s.RunState(t.to_state),
                reason=t.reason,
                at=t.at,
            )
            for t in rows
        ]
    return out


def _masked(conf: dict[str, Any]) -> dict[str, Any]:
    """`conf` with credential-looking values replaced by "***" (nested dicts too)."""
    out: dict[str, Any] = {}
    for key, value in conf.items():
        flat = key.lower().replace("-", "_")
        if any(hint in flat for hint in SECRET_HINTS) and value not in (None, ""):
            out[key] = "***"
        elif isinstance(value, dict):
            out[key] = _masked(value)
        else:
            out[key] = value
    return out


def _connection(conn: s.ConnectionSpec | None) -> s.ConnectionView | None:
    if conn is None:
        return None
    fields = s.ConnectionView.fields_of(conn)
    fields["source_conf"] = _masked(conn.source_conf)
    return s.ConnectionView.model_validate({**fields, "has_password": bool(conn.connect_password)})


def spec_view(*, run: m.Runtime) -> s.RunSpecView:
    """The run's frozen TaskSpec for users: passwords out (`hasPassword`), per-source progress in."""
    try:
        spec = s.TaskSpec.model_validate(run.spec)
    except ValidationError:
        raise NotFound(f"run {run.id} has no task spec to show (it was recorded without one)") from None
    progress = run.source_progress or {}
    sources = []
    for src in spec.sources:
        seen = progress.get(src.source_name) or {}
        fields = s.SourceView.fields_of(src)
        fields.update(
            connection=_connection(src.connection),
            rows_read=seen.get("rowsRead"),
            rows_total=seen.get("rowsTotal"),
        )
        sources.append(s.SourceView.model_validate(fields))
    model = None
    if spec.model is not None:
        model = s.ModelView(
            model_id=spec.model.model_id,
            model_name=spec.model.model_name,
            model_address=spec.model.model_address,
            connection=_connection(spec.model.connection),
        )
    shared = {name: getattr(spec, name) for name in s.RunSpecFields.model_fields}
    return s.RunSpecView(**shared, sources=sources, model=model)
