"""Which version of a model is the best so far (operatorResult), and the score gate of deploys.

**operatorResult.** A version's *effective score* is the score an evaluate node reported for it
(`metrics.evaluatedScore`, see `record_evaluation`) when there is one, else the score it was
registered with. The version whose effective score beats every earlier one is CONTAIN_OPTIMAL;
every other version of the model is NOT_CONTAIN_OPTIMAL (ties keep the earlier version). Higher
is better unless the operator's modelConf says `scoreMode: min` (a loss). The model row's
operatorResult is its latest version's.

**Score-gated deploy.** A node deploys by its operator's deployType. The version it deploys is
the one its run registered (a TRAIN node), or else the version its `model` input resolved to
(an evaluate node with `inputs: {model: train.model}`): seed 000's train -> evaluate -> deploy
chain is a TRAIN node with deployType NOT_DEPLOY and an evaluate node with AUTO_DEPLOY (or
GREY_DEPLOY / TOUCH_DEPLOY) downstream of it. Within an exam (and wherever modelConf sets
`scoreGate: true`) the deploy happens only if the candidate's effective score beats that of
the version the model currently serves; otherwise nothing is deployed and the run's history and
the version's `metrics.deployDecision` say why. `scoreGate: false` turns the gate off.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from control import schemas as s
from control.schemas.pipeline import ArtifactKind
from control.store import models as m

OPTIMAL = s.OperatorResult.CONTAIN_OPTIMAL.value
NOT_OPTIMAL = s.OperatorResult.NOT_CONTAIN_OPTIMAL.value
EVALUATED = "evaluatedScore"
DECISION = "deployDecision"
SERVED_STATES = (s.ServiceState.READY.value, s.ServiceState.STARTING.value)


def score_mode(model_conf: dict[str, Any]) -> str:
    """`max` (default) or `min` (modelConf `scoreMode`, for a loss)."""
    mode = str(model_conf.get("scoreMode") or "max").strip().lower()
    return "min" if mode == "min" else "max"


def beats(candidate: float, other: float, mode: str) -> bool:
    return candidate < other if mode == "min" else candidate > other


def effective_score(version: m.ModelVersion) -> float:
    """The evaluated score of the version when an evaluate node reported one, else its own."""
    value = (version.metrics or {}).get(EVALUATED)
    return float(value) if isinstance(value, int | float) else float(version.model_score)


def _run_model_conf(session: Session, run_id: int | None) -> dict[str, Any]:
    run = session.get(m.Runtime, run_id) if run_id is not None else None
    if run is None:
        return {}
    return dict(((run.spec or {}).get("operator") or {}).get("modelConf") or {})


def model_score_mode(session: Session, model: m.Model) -> str:
    """The score mode of a model: its latest training run's modelConf `scoreMode`."""
    return score_mode(_run_model_conf(session, model.runtime_id))


def refresh(session: Session, model_id: int) -> m.ModelVersion | None:
    """Mark the model's best version CONTAIN_OPTIMAL and every other one NOT_CONTAIN_OPTIMAL.

    Returns the best version (None when the model has no versions).
    """
    model = session.get(m.Model, model_id)
    if model is None:
        return None
    versions = list(
        session.scalars(
            select(m.ModelVersion).where(m.ModelVersion.model_id == model_id).order_by(m.ModelVersion.id)
        )
    )
    if not versions:
        return None
    mode = model_score_mode(session, model)
    best = versions[0]
    for version in versions[1:]:
        if beats(effective_score(version), effective_score(best), mode):
            best = version
    for version in versions:
        version.operator_result = OPTIMAL if version is best else NOT_OPTIMAL
    latest = next((v for v in versions if v.model_version == model.model_version), versions[-1])
    model.operator_result = latest.operator_result
    session.flush()
    return best


def record_evaluation(session: Session, version: m.ModelVersion, score: float, run_id: int) -> None:
    """Record the score an evaluate run gave `version`, then re-rank the model's versions."""
    version.metrics = {**(version.metrics or {}), EVALUATED: float(score), "evaluatedByRun": run_id}
    session.flush()
    refresh(session, version.model_id)


def deploy_candidate(session: Session, run: m.Runtime) -> m.ModelVersion | None:
    """The version a finished run deploys: the one it registered, else its `model` input's."""
    own = session.scalar(select(m.ModelVersion).where(m.ModelVersion.runtime_id == run.id))
    if own is not None:
        return own
    for entry in ((run.spec or {}).get("inputs") or {}).values():
        if isinstance(entry, dict) and entry.get("kind") == ArtifactKind.MODEL.value:
            version_id = (entry.get("value") or {}).get("modelVersionId")
            if isinstance(version_id, int):
                return session.get(m.ModelVersion, version_id)
    return None


def gated(run: m.Runtime, model_conf: dict[str, Any]) -> bool:
    """Whether a deploy of `run` must beat the served version (an exam's run, or scoreGate: true)."""
    flag = model_conf.get("scoreGate")
    if isinstance(flag, str):
        flag = flag.strip().lower() in ("true", "1", "yes", "on")
    if flag is not None:
        return bool(flag)
    return run.exam_run_id is not None or run.exam_id is not None


def served_version(session: Session, model_id: int, *, besides: int) -> m.ModelVersion | None:
    """The version the model's live service serves (the newest ready or starting one)."""
    service = session.scalar(
        select(m.Service)
        .where(
            m.Service.model_id == model_id,
            m.Service.state.in_(SERVED_STATES),
            m.Service.model_version_id != besides,
        )
        .order_by(m.Service.id.desc())
    )
    return session.get(m.ModelVersion, service.model_version_id) if service is not None else None


def gate(session: Session, run: m.Runtime, version: m.ModelVersion, model_conf: dict[str, Any]) -> str | None:
    """Why `version` must not be deployed by `run` (it does not beat the served one), or None.

    The decision is kept on the version (`metrics.deployDecision`).
    """
    live = session.scalar(
        select(m.Service).where(m.Service.model_version_id == version.id, m.Service.state.in_(SERVED_STATES))
    )
    if live is not None:
        again = (
            f"version {version.model_version} is already served by {live.service_name}: not deployed again"
        )
        version.metrics = {**(version.metrics or {}), DECISION: again}
        session.flush()
        return again
    if not gated(run, model_conf):
        return None
    served = served_version(session, version.model_id, besides=version.id)
    why: str | None
    if served is None:
        mine = effective_score(version)
        decision = f"version {version.model_version} scored {mine:g}: no version served, deployed"
        why = None
    else:
        mode = score_mode(model_conf)
        mine, theirs = effective_score(version), effective_score(served)
        better = "above" if mode == "max" else "below"
        if beats(mine, theirs, mode):
            decision = (
                f"version {version.model_version} scored {mine:g}, {better} served version "
                f"{served.model_version}'s {theirs:g}: deployed"
            )
            why = None
        else:
            decision = (
                f"version {version.model_version} scored {mine:g}, not {better} served version "
                f"{served.model_version}'s {theirs:g}: not deployed"
            )
            why = decision
    version.metrics = {**(version.metrics or {}), DECISION: decision}
    session.flush()
    return why
