"""Artifacts: the outputs a run leaves, and the inputs of downstream runs resolved from them.

A run's outputs, one `RunArtifact` per name:

- `model` (kind model): the version the run registered; value `{modelId, modelName,
  modelVersionId, version, score, operatorResult}`, uri the version's model address.
- `metrics` (kind metrics): the run's final metrics (the last value of each name).
- `sink:<sourceName>` (kind dataset): a sink the agent committed; value `{connection, target,
  rows, format}`. A reference may also name the sink by its source name alone (`etl.scores`).
- any other name (kind file): a file the operator declared with `ctx.declare_output(name, path)`,
  stored beside the run's model; uri where it lies.

A node's `inputs` map an input name to `upstreamNode.output`. They are resolved when the run is
dispatched (`resolve_inputs`), from the upstream node's run in the same exam run (a run outside an
exam run takes the upstream node's latest succeeded run). A `model` input also points the run's
model at that version, so an evaluate node loads exactly the version its upstream trained (a TRAIN
node with a model of its own keeps it: it registers its own versions, and reads the input model
with `ctx.input_model`).

Every function takes a session inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from control import schemas as s
from control.errors import InvalidSpec
from control.pipeline import best_version
from control.schemas.artifacts import ArtifactOut, ArtifactReport
from control.schemas.pipeline import ArtifactKind, split_ref
from control.store import models as m
from control.store.relations import edges_among, relation_of, relation_source_ids

MODEL, METRICS, SINK_PREFIX = "model", "metrics", "sink:"
CACHED_PREFIX = "cached:"
USABLE_STATES = (s.RunState.SUCCEEDED.value,)


# -- recording ---------------------------------------------------------------------------------


def put(
    session: Session,
    run_id: int,
    name: str,
    kind: ArtifactKind,
    *,
    uri: str = "",
    value: Mapping[str, Any] | None = None,
    reused_from: int | None = None,
) -> m.RunArtifact:
    """Create or replace the run's artifact `name` (one per run and name: a repeat replaces it)."""
    row = session.scalar(
        select(m.RunArtifact).where(m.RunArtifact.runtime_id == run_id, m.RunArtifact.name == name)
    )
    if row is None:
        row = m.RunArtifact(runtime_id=run_id, name=name)
        session.add(row)
    row.kind = kind.value
    row.uri = uri[:1024]
    row.value = dict(value or {})
    row.reused_from = reused_from
    session.flush()
    return row


def report(session: Session, run: m.Runtime, reports: list[ArtifactReport]) -> list[m.RunArtifact]:
    """Store what the agent reports (sink datasets, declared files); model and metrics are control's."""
    rows = []
    for i, item in enumerate(reports):
        if item.kind in (ArtifactKind.MODEL, ArtifactKind.METRICS) or item.name in (MODEL, METRICS):
            raise InvalidSpec(
                f"artifact {item.name!r}: model and metrics outputs are recorded by control "
                "when the run succeeds, not reported",
                field=f"artifacts[{i}].name",
            )
        rows.append(put(session, run.id, item.name, item.kind, uri=item.uri, value=item.value))
    return rows


def final_metrics(session: Session, run_id: int) -> dict[str, float]:
    """The last reported value of each of the run's metrics (highest step, then latest row)."""
    rows = session.execute(
        select(m.RunMetric.name, m.RunMetric.value)
        .where(m.RunMetric.runtime_id == run_id)
        .order_by(m.RunMetric.step, m.RunMetric.id)
    )
    return {name: float(value) for name, value in rows}


def version_value(session: Session, version: m.ModelVersion) -> dict[str, Any]:
    model = session.get(m.Model, version.model_id)
    return {
        "modelId": version.model_id,
        "modelName": model.model_name if model else "",
        "modelVersionId": version.id,
        "version": version.model_version,
        "score": version.model_score,
        "operatorResult": version.operator_result,
    }


def record_outputs(*, session: Session, run: m.Runtime) -> None:
    """Record the outputs of a run that just succeeded (its model version, final metrics, ...).

    A run with a `model` input (an evaluate node) that reports the score metric (modelConf
    `scoreMetric`, else `score`, else `accuracy`) records it as that version's evaluated score.
    """
    metrics = final_metrics(session, run.id)
    version = session.scalar(select(m.ModelVersion).where(m.ModelVersion.runtime_id == run.id))
    if version is not None:
        metrics = {**{k: float(v) for k, v in (version.metrics or {}).items() if _number(v)}, **metrics}
    spec = s.TaskSpec.model_validate(run.spec)
    evaluated = _input_version(session, spec) if version is None else None
    score = _score(metrics, spec.operator.model_conf)
    if evaluated is not None and score is not None:
        best_version.record_evaluation(session, evaluated, score, run.id)
    if version is not None:
        put(
            session,
            run.id,
            MODEL,
            ArtifactKind.MODEL,
            uri=version.model_address,
            value=version_value(session, version),
        )
    put(session, run.id, METRICS, ArtifactKind.METRICS, value=metrics)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _score(metrics: Mapping[str, float], model_conf: Mapping[str, Any]) -> float | None:
    for key in (str(model_conf.get("scoreMetric") or "score"), "accuracy"):
        if key in metrics:
            return float(metrics[key])
    return None


def _input_version(session: Session, spec: s.TaskSpec) -> m.ModelVersion | None:
    for entry in spec.inputs.values():
        if entry.get("kind") == ArtifactKind.MODEL.value:
            version_id = (entry.get("value") or {}).get("modelVersionId")
            if isinstance(version_id, int):
                return session.get(m.ModelVersion, version_id)
    return None


def copy_outputs(*, session: Session, source_run_id: int, run: m.Runtime) -> None:
    """Give `run` the artifacts of `source_run_id` (a cache hit), each marked `reused_from`."""
    for row in session.scalars(select(m.RunArtifact).where(m.RunArtifact.runtime_id == source_run_id)):
        put(
            session,
            run.id,
            row.name,
            ArtifactKind(row.kind),
            uri=row.uri,
            value=row.value,
            reused_from=row.reused_from or source_run_id,
        )


def artifacts_of(session: Session, run: m.Runtime) -> list[ArtifactOut]:
    rows = session.scalars(
        select(m.RunArtifact).where(m.RunArtifact.runtime_id == run.id).order_by(m.RunArtifact.id)
    )
    return [
        ArtifactOut(
            name=row.name,
            kind=ArtifactKind(row.kind),
            uri=row.uri,
            value=row.value or {},
            run_id=run.id,
            node_name=run.node_name,
            reused_from=row.reused_from,
            created_at=row.created_at,
        )
        for row in rows
    ]


# -- resolving inputs at dispatch ---------------------------------------------------------------


def _done(run: m.Runtime) -> bool:
    return run.state in USABLE_STATES or (
        run.state == s.RunState.SKIPPED.value and (run.reason or "").startswith(CACHED_PREFIX)
    )


def upstream_run(session: Session, run: m.Runtime, upstream: m.Node) -> m.Runtime | None:
    """The run of `upstream` whose outputs `run` takes: the same exam run's (or launch's), else the
    node's latest succeeded (or cache-served) run."""
    if run.exam_run_id is not None:
        return session.scalar(
            select(m.Runtime)
            .where(m.Runtime.exam_run_id == run.exam_run_id, m.Runtime.node_id == upstream.id)
            .order_by(m.Runtime.id.desc())
        )
    if run.upstream_run_ids:
        found = session.scalar(
            select(m.Runtime)
            .where(m.Runtime.id.in_(list(run.upstream_run_ids)), m.Runtime.node_id == upstream.id)
            .order_by(m.Runtime.id.desc())
        )
        if found is not None:
            return found
    for candidate in session.scalars(
        select(m.Runtime)
        .where(m.Runtime.node_id == upstream.id, m.Runtime.id != run.id)
        .order_by(m.Runtime.id.desc())
        .limit(50)
    ):
        if _done(candidate):
            return candidate
    return None


def find_artifact(session: Session, run_id: int, output: str) -> m.RunArtifact | None:
    """The artifact `output` of a run; a sink dataset may be named by its source name alone."""
    for name in (output, SINK_PREFIX + output):
        row = session.scalar(
            select(m.RunArtifact).where(m.RunArtifact.runtime_id == run_id, m.RunArtifact.name == name)
        )
        if row is not None:
            return row
    return None


def resolve_inputs(*, session: Session, run: m.Runtime, spec: s.TaskSpec) -> None:
    """Fill `spec.inputs` from the node's `inputs` ({name: "upstreamNode.output"}) at dispatch.

    Each reference is looked up among the artifacts of the upstream node's run in the same exam
    run; a model input also points `spec.model` at that version.

    Raises:
        InvalidSpec: a reference names no upstream node of the exam, or an output it did not leave.
    """
    node = session.get(m.Node, run.node_id) if run.node_id is not None else None
    if node is None or not node.inputs:
        return
    resolved: dict[str, dict[str, Any]] = {}
    for name, ref in sorted(node.inputs.items()):
        field = f"inputs.{name}"
        up_name, output = split_ref(str(ref))
        upstream = session.scalar(
            select(m.Node).where(m.Node.space_id == node.space_id, m.Node.node_name == up_name)
        )
        if upstream is None:
            raise InvalidSpec(f"{field}: {ref!r} names node {up_name!r}, which does not exist", field=field)
        source = upstream_run(session, run, upstream)
        where = f"exam run {run.exam_run_id}" if run.exam_run_id is not None else "any earlier launch"
        if source is None:
            raise InvalidSpec(
                f"{field}: node {up_name!r} has no run in {where} to take {output!r} from", field=field
            )
        if not _done(source):
            raise InvalidSpec(
                f"{field}: run {source.id} of node {up_name!r} is {source.state}: it left no {output!r}",
                field=field,
            )
        artifact = find_artifact(session, source.id, output)
        if artifact is None:
            have = sorted(
                session.scalars(select(m.RunArtifact.name).where(m.RunArtifact.runtime_id == source.id))
            )
            raise InvalidSpec(
                f"{field}: run {source.id} of node {up_name!r} left no output {output!r} "
                f"(it left: {', '.join(have) or 'nothing'})",
                field=field,
            )
        entry = {
            "name": artifact.name,
            "kind": artifact.kind,
            "uri": artifact.uri,
            "value": dict(artifact.value or {}),
            "runId": source.id,
            "nodeName": up_name,
        }
        resolved[name] = entry
        if artifact.kind == ArtifactKind.MODEL.value:
            _point_model(session, spec, source, entry, field)
    spec.inputs = resolved


def _point_model(
    session: Session, spec: s.TaskSpec, source: m.Runtime, entry: dict[str, Any], field: str
) -> None:
    value = entry["value"]
    if spec.operator.operator_runtime_type == s.OperatorRuntimeType.TRAIN and spec.model is not None:
        return  # a TRAIN node registers its own model: the input is fetched with ctx.input_model
    version = session.get(m.ModelVersion, value.get("modelVersionId"))
    if version is None:
        raise InvalidSpec(f"{field}: model version {value.get('version')!r} no longer exists", field=field)
    model = session.get(m.Model, version.model_id)
    frozen = (source.spec or {}).get("model") or {}
    connection = frozen.get("connection")
    spec.model = s.ModelSpec(
        model_id=version.model_id,
        model_name=model.model_name if model else str(value.get("modelName", "")),
        model_version=version.model_version,
        model_address=version.model_address,
        connection=s.ConnectionSpec.model_validate(connection) if connection else None,
    )


# -- checks at apply ------------------------------------------------------------------------------


def ancestors(session: Session, node_id: int, exam_id: int | None) -> set[int]:
    """Ids of the nodes upstream of node `node_id` in its exam (through node edges)."""
    if exam_id is None:
        return set()
    ids = list(session.scalars(select(m.Node.id).where(m.Node.exam_id == exam_id)))
    parents: dict[int, set[int]] = {}
    for a, b in edges_among(session=session, node_ids=ids):
        parents.setdefault(b, set()).add(a)
    seen: set[int] = set()
    todo = [node_id]
    while todo:
        for parent in parents.get(todo.pop(), ()):
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def check_inputs(
    *,
    session: Session,
    node_id: int,
    space_id: int,
    exam_id: int | None,
    node_name: str,
    inputs: Mapping[str, str],
) -> None:
    """Refuse inputs that can never resolve, naming `inputs.<name>`: a node that is not upstream of
    this one in its exam, `model` from a node with no model bound, `sink:x` where x is not one of
    that node's sinks. Checked when the node is marked EDIT_FINISH (its edges exist by then).

    Raises:
        InvalidSpec: the first bad reference.
    """
    if not inputs:
        return
    upstream_ids = ancestors(session, node_id, exam_id)
    for name, ref in sorted(inputs.items()):
        field = f"inputs.{name}"
        up_name, output = split_ref(str(ref))
        upstream = session.scalar(
            select(m.Node).where(m.Node.space_id == space_id, m.Node.node_name == up_name)
        )
        if upstream is None:
            raise InvalidSpec(f"{field}: node {up_name!r} does not exist", field=field)
        if exam_id is None or upstream.exam_id != exam_id:
            raise InvalidSpec(
                f"{field}: node {up_name!r} is not in the same exam as {node_name!r}", field=field
            )
        if upstream.id not in upstream_ids:
            raise InvalidSpec(
                f"{field}: node {up_name!r} is not upstream of {node_name!r}: link it with nextNodeIds",
                field=field,
            )
        _check_output(session, upstream, output, field)


def _check_output(session: Session, upstream: m.Node, output: str, field: str) -> None:
    rel = relation_of(session=session, node_id=upstream.id)
    if output == MODEL and (rel is None or rel.model_id is None):
        raise InvalidSpec(
            f"{field}: node {upstream.node_name!r} has no model bound, so it leaves no model", field=field
        )
    if output.startswith(SINK_PREFIX):
        sink = output[len(SINK_PREFIX) :]
        ids = relation_source_ids(session=session, relation_id=rel.id) if rel is not None else []
        sinks = (
            set(
                session.scalars(
                    select(m.DataSource.source_name).where(
                        m.DataSource.id.in_(ids), m.DataSource.source_type == s.SourceRole.SINK.value
                    )
                )
            )
            if ids
            else set()
        )
        if sink not in sinks:
            raise InvalidSpec(
                f"{field}: {sink!r} is not a sink of node {upstream.node_name!r} "
                f"(its sinks: {', '.join(sorted(sinks)) or 'none'})",
                field=field,
            )
