"""Inference service routes: list, describe, stop, and approve a TOUCH_DEPLOY service."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from control import schemas as s
from control.api.deps import Orch, require_user
from control.errors import NotFound
from control.store import models as m
from control.store import repo

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_user)], tags=["services"])


def service_view(ses: Session, svc: m.Service) -> s.ServiceOut:
    model = ses.get(m.Model, svc.model_id)
    version = ses.get(m.ModelVersion, svc.model_version_id)
    return s.ServiceOut(
        id=svc.id,
        service_name=svc.service_name,
        space_id=svc.space_id,
        model_name=model.model_name if model else "",
        model_version=version.model_version if version else "",
        runtime_id=svc.runtime_id,
        replicas=svc.replicas,
        endpoint=svc.endpoint,
        traffic_weight=svc.traffic_weight,
        state=s.ServiceState(svc.state),
        reason=svc.reason,
        adapter=svc.adapter,
        created_at=svc.created_at,
        public=svc.public,
        has_key=svc.api_key_hash is not None,
    )


def _get(ses: Session, service_id: int) -> m.Service:
    svc = ses.get(m.Service, service_id)
    if svc is None:
        raise NotFound(f"service {service_id} does not exist")
    return svc


@router.get("/services", response_model=list[s.ServiceOut])
def list_services(orch: Orch, space: str | None = None) -> list[s.ServiceOut]:
    with orch.store.transaction() as ses:
        stmt = select(m.Service).order_by(m.Service.id)
        if space is not None:
            stmt = stmt.where(m.Service.space_id == repo.get_space(session=ses, space=space).id)
        return [service_view(ses, r) for r in ses.scalars(stmt)]


@router.get("/services/{service_id}", response_model=s.ServiceOut)
def get_service(service_id: int, orch: Orch) -> s.ServiceOut:
    with orch.store.transaction() as ses:
        return service_view(ses, _get(ses, service_id))


@router.post("/services/{service_id}/stop", response_model=s.ServiceOut)
async def stop_service(service_id: int, orch: Orch) -> s.ServiceOut:
    await orch.stop_service(service_id)
    return await orch.db(lambda ses: service_view(ses, _get(ses, service_id)))


@router.post("/services/{service_id}/approve", response_model=s.ServiceOut)
async def approve_service(service_id: int, orch: Orch) -> s.ServiceOut:
    key = await orch.approve_service(service_id)  # a new key is shown in this answer only
    view = await orch.db(lambda ses: service_view(ses, _get(ses, service_id)))
    return view.model_copy(update={"api_key": key})
