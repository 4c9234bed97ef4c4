"""The runtime agent's calls: fetch the task spec, report state, heartbeats, metrics, log, model versions.

Each call carries the run's own token (or, for `serve`, the service's token); a run's token is
checked in the same transaction as the call's work (`runs.agent_run`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from control import launch, retries, run_logs, runs
from control import schemas as s
from control.api.deps import Orch, RunToken, require_service_token
from control.api.params import RunId, ServiceId
from control.errors import NotFound
from control.pipeline import artifacts
from control.schemas.logs import LogBatch, LogReceived
from control.schemas.pipeline import FailureClass
from control.store import models as m
from control.store import run_views

router = APIRouter(prefix="/api/v1/agent", tags=["agent"])


def service_auth(request: Request, service_id: ServiceId) -> None:
    require_service_token(request, service_id)


@router.get("/runs/{run_id}/spec", response_model=s.TaskSpec)
def task_spec(run_id: RunId, token: RunToken, orch: Orch) -> s.TaskSpec:
    with orch.store.transaction() as ses:
        return runs.agent_spec(run=runs.agent_run(session=ses, run_id=run_id, token=token), vault=orch.vault)


@router.post("/runs/{run_id}/state", response_model=s.RunOut)
def report_state(run_id: RunId, report: s.StateReport, token: RunToken, orch: Orch) -> s.RunOut:
    """Move the run to the reported state; answers the run as it is now (without `externalId`)."""
    with orch.store.transaction() as ses:
        run = runs.agent_run(session=ses, run_id=run_id, token=token)
        reason = report.reason or f"agent: {report.state.value}"
        if report.state == s.RunState.FAILED and run.state in runs.ACTIVE_STATES:
            retries.fail_run(
                session=ses,
                run=run,
                reason=reason,
                failure=report.failure_class or FailureClass.USER,
                retryable=report.retryable,
                settings=orch.settings,
            )
        else:
            was = run.state
            runs.transition(session=ses, run=run, to=report.state, reason=reason)
            if report.state == s.RunState.SUCCEEDED and was != run.state:
                artifacts.record_outputs(session=ses, run=run)
        (out,) = run_views.views(session=ses, runs=[run], dispatch=False)  # the agent needs no externalId
    if report.state.is_terminal():
        orch.exams.kick()  # downstream runs of its exam run start now
    return out


@router.post("/runs/{run_id}/heartbeat")
def heartbeat(run_id: RunId, beat: s.Heartbeat, token: RunToken, orch: Orch) -> dict[str, Any]:
    with orch.store.transaction() as ses:
        run = runs.agent_run(session=ses, run_id=run_id, token=token)
        stop = runs.heartbeat(session=ses, run=run, beat=beat)
        return {"stop": stop}


@router.post("/runs/{run_id}/metrics", status_code=204)
def report_metrics(run_id: RunId, report: s.MetricReport, token: RunToken, orch: Orch) -> None:
    with orch.store.transaction() as ses:
        runs.add_metrics(
            session=ses, run=runs.agent_run(session=ses, run_id=run_id, token=token), report=report
        )


@router.post("/runs/{run_id}/logs", response_model=LogReceived)
def ship_log(run_id: RunId, batch: LogBatch, token: RunToken, orch: Orch) -> LogReceived:
    """Keep a batch of the agent's output; a batch sent again adds nothing. `received`: where the
    next batch starts (an empty batch at offset 0 only asks)."""
    with orch.store.transaction() as ses:
        runs.agent_run(session=ses, run_id=run_id, token=token)
    got = run_logs.append(
        orch.settings.runs_dir, run_id, offset=batch.offset, text=batch.text, final=batch.final
    )
    return LogReceived(received=got)


@router.post("/runs/{run_id}/model-version", response_model=s.ModelVersionAssigned)
def model_version(
    run_id: RunId, report: s.ModelVersionReport, token: RunToken, orch: Orch
) -> s.ModelVersionAssigned:
    with orch.store.transaction() as ses:
        run = runs.agent_run(session=ses, run_id=run_id, token=token)
        version = runs.register_model_version(session=ses, run=run, report=report)
        return s.ModelVersionAssigned(model_version=version.model_version, model_version_id=version.id)


def service_run(ses: Session, svc: m.Service) -> m.Runtime | None:
    """The run that trained the service's model (the service's runtimeId, else its version's)."""
    run_id = svc.runtime_id
    if run_id is None:
        version = ses.get(m.ModelVersion, svc.model_version_id)
        run_id = version.runtime_id if version is not None else None
    return ses.get(m.Runtime, run_id) if run_id is not None else None


@router.get("/services/{service_id}/spec", response_model=s.ServeSpec, dependencies=[Depends(service_auth)])
def serve_spec(service_id: ServiceId, orch: Orch) -> s.ServeSpec:
    def build(ses: Session) -> s.ServeSpec:
        svc = ses.get(m.Service, service_id)
        if svc is None:
            raise NotFound(f"service {service_id} does not exist")
        model = ses.get(m.Model, svc.model_id)
        version = ses.get(m.ModelVersion, svc.model_version_id)
        assert model is not None and version is not None
        conn = ses.get(m.Connection, model.connect_id) if model.connect_id else None
        connection = runs.decrypted(launch.connection_spec(conn), orch.vault) if conn is not None else None
        run = service_run(ses, svc)
        frozen = s.TaskSpec.model_validate(run.spec) if run else None
        if connection is None and frozen is not None and frozen.model and frozen.model.connection:
            # a create_operators run: the payload's modelConnect
            connection = runs.decrypted(frozen.model.connection, orch.vault)
        op = frozen.operator if frozen else None
        return s.ServeSpec(
            service_id=svc.id,
            service_name=svc.service_name,
            model_name=model.model_name,
            model_version=version.model_version,
            model_address=version.model_address,
            connection=connection,
            serving_object=svc.serving_object,
            model_conf=op.model_conf if op else {},
            code_mode=op.code_mode if op else "MODULE",
            code_address=op.code_address if op else "",
            code_version=op.code_version if op else "",
            module_name=op.module_name.strip().split(".")[0] if op else "",
        )

    with orch.store.transaction() as ses:
        return build(ses)
