"""Cacheable nodes: a run whose cache key matches an earlier succeeded run of its node is skipped.

The key (sha256) covers everything the node's outputs depend on:

- the bound spec, without what differs between runs of the same work (run id, attempt, exam run,
  the model version reserved for the run and, for a TRAIN node, its model's latest address: what
  it trains replaces it; connection passwords);
- the code: codeMode, codeAddress (a BUNDLE's content digest), codeVersion, module and object,
  and the environmentConf (dependencies);
- the upstream artifacts its inputs resolved to (kind, uri and value);
- a data watermark of every source it reads (`watermarks`), so changed data is never served a
  stale result.

At dispatch (`serve_from_cache`, after the spec is bound and before quota is tried) a hit moves the
run to SKIPPED with the reason `cached: same inputs, code and data as run 12 (key ab12cd34)` and
copies that run's artifacts (`reused_from`); a miss stores the key on the run and the run is
dispatched. A source whose watermark cannot be read means no cache: the run's history says why.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from control import runs
from control import schemas as s
from control.pipeline import artifacts, watermarks
from control.store import models as m

if TYPE_CHECKING:
    from control.orchestrator import Orchestrator
    from control.secrets import Vault

logger = logging.getLogger(__name__)

RUN_FIELDS = ("runId", "attempt", "examRunId")
"""Spec fields that differ between runs of the same work."""
VOLATILE_VALUE = ("operatorResult", "evaluatedScore", "deployDecision")
"""Artifact value fields that change after the artifact was made (a later version ranked higher)."""


@dataclass
class Plan:
    spec: s.TaskSpec
    sources: list[s.SourceSpec]
    """Read sources with decrypted connections (for their watermarks)."""


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if k != "connectPassword"}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def key_parts(spec: s.TaskSpec, marks: dict[str, Any]) -> dict[str, Any]:
    """What the cache key hashes (readable; `cache_key` hashes it)."""
    body = _scrub(spec.wire())
    for name in RUN_FIELDS:
        body.pop(name, None)
    if isinstance(body.get("model"), dict):
        body["model"].pop("modelVersion", None)
        if spec.operator.operator_runtime_type == s.OperatorRuntimeType.TRAIN:
            body["model"].pop("modelAddress", None)  # the model's latest version: what it trains replaces it
    body.pop("inputs", None)
    body["runParameter"] = {k: v for k, v in (body.get("runParameter") or {}).items() if k != "runId"}
    op = spec.operator
    return {
        "spec": body,
        "code": {
            "codeMode": op.code_mode,
            "codeAddress": op.code_address,
            "codeVersion": op.code_version,
            "module": op.module_name,
            "object": op.execute_object,
            "environmentConf": op.environment_conf,
        },
        "inputs": {
            name: {
                "kind": entry.get("kind"),
                "uri": entry.get("uri"),
                "value": {k: v for k, v in (entry.get("value") or {}).items() if k not in VOLATILE_VALUE},
            }
            for name, entry in sorted(spec.inputs.items())
        },
        "data": marks,
    }


def cache_key(spec: s.TaskSpec, marks: dict[str, Any]) -> str:
    raw = json.dumps(key_parts(spec, marks), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def plan(session: Session, run_id: int, vault: Vault) -> Plan | None:
    """What keying the run needs, or None when its node is not cacheable (or the run is not waiting)."""
    run = runs.get_run(session=session, run_id=run_id)
    node = session.get(m.Node, run.node_id) if run.node_id is not None else None
    if node is None or not node.cacheable:
        return None
    if run.state not in (s.RunState.QUEUED.value, s.RunState.PENDING.value):
        return None
    spec = s.TaskSpec.model_validate(run.spec)
    sources = []
    for src in s.TaskSpec.model_validate(run.spec).sources:
        if str(src.source_type) != s.SourceRole.SINK.value:
            runs.decrypted(src.connection, vault)
            sources.append(src)
    return Plan(spec=spec, sources=sources)


def settle(session: Session, run_id: int, key: str) -> int | None:
    """Store the key; on a hit skip the run with its reason and copy the outputs. The hit's run id."""
    run = runs.get_run(session=session, run_id=run_id)
    run.cache_key = key
    if run.state not in (s.RunState.QUEUED.value, s.RunState.PENDING.value):
        return None
    hit = session.scalar(
        select(m.Runtime)
        .where(
            m.Runtime.node_id == run.node_id,
            m.Runtime.cache_key == key,
            m.Runtime.state == s.RunState.SUCCEEDED.value,
            m.Runtime.id != run.id,
        )
        .order_by(m.Runtime.id.desc())
    )
    if hit is None:
        session.flush()
        return None
    why = f"{artifacts.CACHED_PREFIX} same inputs, code and data as run {hit.id} (key {key[:8]})"
    runs.transition(session=session, run=run, to=s.RunState.SKIPPED, reason=why)
    artifacts.copy_outputs(session=session, source_run_id=hit.id, run=run)
    return hit.id


async def serve_from_cache(orch: Orchestrator, run_id: int) -> bool:
    """Skip the run if its node is cacheable and an earlier run did the same work; True when skipped."""
    found = await orch.db(lambda ses: plan(ses, run_id, orch.vault))
    if found is None:
        return False
    try:
        marks = await watermarks.read_all(found.sources, limit_s=orch.settings.cache_watermark_timeout_s)
    except watermarks.NoWatermark as exc:
        why = f"not served from cache: {exc}"
        await orch.db(lambda ses: _note(ses, run_id, why))
        logger.info("run %s: %s", run_id, why)
        return False
    key = cache_key(found.spec, marks)
    hit = await orch.db(lambda ses: settle(ses, run_id, key))
    if hit is not None:
        logger.info("run %s served from cache: run %s did the same work (key %s)", run_id, hit, key[:8])
    return hit is not None


def _note(session: Session, run_id: int, why: str) -> None:
    run = runs.get_run(session=session, run_id=run_id)
    run.cache_key = None
    runs.note(session=session, run=run, reason=why)
