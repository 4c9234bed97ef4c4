"""Inference keys and public access of services, and the serving process's access checks.

`POST /api/v1/services/{id}/key` makes a new key (shown in that answer only; the former stops
working within seconds); `PATCH /api/v1/services/{id}` sets `public`. The serving process,
with its service token, fetches `GET /api/v1/agent/services/{id}/access` (public flag and key
hashes) and asks `POST /api/v1/agent/services/{id}/access/check` about user tokens.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from control import audit, service_keys
from control.access import Need, allow
from control.api.deps import Caller, Orch, require_service_token
from control.api.params import ServiceId
from control.api.routes.services import service_view
from control.schemas import ServiceOut
from control.schemas.service_keys import (
    ServiceAccess,
    ServiceAccessPatch,
    ServiceKey,
    TokenCheck,
    TokenVerdict,
)

router = APIRouter(prefix="/api/v1", tags=["services"])


def service_auth(request: Request, service_id: ServiceId) -> None:
    require_service_token(request, service_id)


@router.post("/services/{service_id}/key", response_model=ServiceKey)
def rotate_key(service_id: ServiceId, who: Caller, orch: Orch) -> ServiceKey:
    """A new inference key for the service, shown in this answer only."""
    with orch.store.transaction() as ses:
        svc = service_keys.get_service(ses, service_id)
        allow(ses, who, svc.space_id, Need.WRITE, f"service {service_id} does not exist")
        key = service_keys.set_new_key(svc)
        audit.record(ses, who, "rotate-key", "service", svc.service_name, space_id=svc.space_id)
        return ServiceKey(service_id=svc.id, service_name=svc.service_name, key=key)


@router.patch("/services/{service_id}", response_model=ServiceOut)
def patch_service(service_id: ServiceId, patch: ServiceAccessPatch, who: Caller, orch: Orch) -> ServiceOut:
    """Make the service public (answers without a token) or not."""
    with orch.store.transaction() as ses:
        svc = service_keys.get_service(ses, service_id)
        allow(ses, who, svc.space_id, Need.WRITE, f"service {service_id} does not exist")
        if svc.public != patch.public:
            svc.public = patch.public
            audit.record(
                ses, who, "change", "service", svc.service_name, space_id=svc.space_id, public=patch.public
            )
        return service_view(ses, svc)


@router.get(
    "/agent/services/{service_id}/access",
    response_model=ServiceAccess,
    dependencies=[Depends(service_auth)],
    tags=["agent"],
)
def service_access(service_id: ServiceId, orch: Orch) -> ServiceAccess:
    with orch.store.transaction() as ses:
        return service_keys.access_of(ses, orch.settings, service_keys.get_service(ses, service_id))


@router.post(
    "/agent/services/{service_id}/access/check",
    response_model=TokenVerdict,
    dependencies=[Depends(service_auth)],
    tags=["agent"],
)
def check_token(service_id: ServiceId, body: TokenCheck, orch: Orch) -> TokenVerdict:
    with orch.store.transaction() as ses:
        svc = service_keys.get_service(ses, service_id)
        return service_keys.check_token(ses, orch.settings, svc, body.token)
