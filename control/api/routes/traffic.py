"""How a model's requests are split between its versions: promote, roll back, weight and mirror.

`POST /api/v1/services/{id}/promote`: the version takes every request, the model's other versions
are stopped. `POST /api/v1/services/{id}/rollback`: the version goes to 0% and is stopped, the
newest other ready version takes its share. `PUT /api/v1/services/{id}/traffic` with
`{"trafficWeight": 30}` gives the version 30% (the others share the rest as before), with
`{"mirrorPercent": 10}` copies 10% of the requests to it (only the primary's answer is returned).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import Field
from sqlalchemy.orm import Session

from control import audit, traffic
from control import schemas as s
from control.access import Need
from control.api.deps import Caller, Orch, require_user
from control.api.params import ServiceId
from control.api.routes.services import view_of
from control.api.tenancy import service_of
from control.errors import InvalidSpec
from control.schemas import ServiceOut

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_user)], tags=["services"])


class TrafficPatch(s.Wire):
    """`PUT /api/v1/services/{id}/traffic`: this version's share, its mirrored share, or both."""

    traffic_weight: int | None = Field(default=None, ge=0, le=100)
    """This version's share of the requests (0-100); the model's other ready versions share the rest."""
    mirror_percent: int | None = Field(default=None, ge=0, le=100)
    """The share of the requests copied to this version (0 stops mirroring to it)."""


@router.post("/services/{service_id}/promote", response_model=ServiceOut)
async def promote(service_id: ServiceId, orch: Orch, who: Caller) -> ServiceOut:
    """This version takes every request; the model's other versions are stopped."""
    await orch.db(lambda ses: service_of(ses, who, service_id, Need.WRITE))
    await orch.promote_service(service_id, who=who)
    return await orch.db(lambda ses: view_of(ses, who, service_id))


@router.post("/services/{service_id}/rollback", response_model=ServiceOut)
async def rollback(service_id: ServiceId, orch: Orch, who: Caller) -> ServiceOut:
    """This version goes to 0% and is stopped; answers the version that took its share."""
    await orch.db(lambda ses: service_of(ses, who, service_id, Need.WRITE))
    back = await orch.rollback_service(service_id, who=who)
    return await orch.db(lambda ses: view_of(ses, who, back))


@router.put("/services/{service_id}/traffic", response_model=list[ServiceOut])
async def set_traffic(
    service_id: ServiceId, patch: TrafficPatch, orch: Orch, who: Caller
) -> list[ServiceOut]:
    """Set the version's share and/or mirrored share; answers every ready version of the model
    (the model's front routes by the new split when this answers)."""
    if patch.traffic_weight is None and patch.mirror_percent is None:
        raise InvalidSpec("give trafficWeight (0-100), mirrorPercent (0-100), or both")

    def change(ses: Session) -> tuple[int | None, int]:
        svc = service_of(ses, who, service_id, Need.WRITE)
        if patch.traffic_weight is not None:
            traffic.split(ses, svc, patch.traffic_weight)
        if patch.mirror_percent is not None:
            traffic.mirror(ses, svc, patch.mirror_percent)
        changes = patch.model_dump(exclude_none=True, by_alias=True)
        audit.record(ses, who, "change", "service", svc.service_name, space_id=svc.space_id, **changes)
        return svc.space_id, svc.model_id

    key = await orch.db(change)
    await orch.sync_front(*key)

    def views(ses: Session) -> list[ServiceOut]:
        svc = service_of(ses, who, service_id)
        return [view_of(ses, who, v.id) for v in traffic.versions(ses, svc)]

    return await orch.db(views)
