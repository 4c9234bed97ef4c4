"""Inference service routes: list, describe, stop, and approve a TOUCH_DEPLOY service."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from control import fronts
from control import schemas as s
from control.access import Need, Principal, space_for
from control.api.deps import Caller, Orch, require_user
from control.api.params import ServiceId, SpaceQuery
from control.api.tenancy import service_of
from control.store import models as m

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
        restarts=svc.restarts,
        mirror_percent=svc.mirror_percent,
        front_endpoint=fronts.front_endpoint(ses, svc),
    )


@router.get("/services", response_model=list[s.ServiceOut])
def list_services(orch: Orch, who: Caller, space: SpaceQuery = None) -> list[s.ServiceOut]:
    """The caller's services (of one space with `space`)."""
    with orch.store.transaction() as ses:
        stmt = select(m.Service).order_by(m.Service.id)
        if space is not None:
            stmt = stmt.where(m.Service.space_id == space_for(ses, who, space).id)
        visible = who.space_ids(ses)
        if visible is not None:
            stmt = stmt.where(m.Service.space_id.in_(sorted(visible)))
        return [service_view(ses, r) for r in ses.scalars(stmt)]


@router.get("/services/{service_id}", response_model=s.ServiceOut)
def get_service(service_id: ServiceId, orch: Orch, who: Caller) -> s.ServiceOut:
    with orch.store.transaction() as ses:
        return service_view(ses, service_of(ses, who, service_id))


def view_of(ses: Session, who: Principal, service_id: int) -> s.ServiceOut:
    return service_view(ses, service_of(ses, who, service_id))


@router.post("/services/{service_id}/stop", response_model=s.ServiceOut)
async def stop_service(service_id: ServiceId, orch: Orch, who: Caller) -> s.ServiceOut:
    await orch.db(lambda ses: service_of(ses, who, service_id, Need.WRITE))
    await orch.stop_service(service_id, who=who)
    return await orch.db(lambda ses: view_of(ses, who, service_id))


@router.post("/services/{service_id}/approve", response_model=s.ServiceOut)
async def approve_service(service_id: ServiceId, orch: Orch, who: Caller) -> s.ServiceOut:
    await orch.db(lambda ses: service_of(ses, who, service_id, Need.WRITE))
    key = await orch.approve_service(service_id, who=who)  # a new key is shown in this answer only
    view = await orch.db(lambda ses: view_of(ses, who, service_id))
    return view.model_copy(update={"api_key": key})
