"""`atom render`'s routes: the YAML the Kubernetes adapter would apply, read-only.

`GET /api/v1/spaces/{space}/nodes/{name}/render` (the node's next run) and
`GET /api/v1/services/{service_id}/render` answer `{"kind", "name", "namespace", "yaml"}`; tokens
are placeholders, nothing is stored.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from control.access import space_for
from control.api.deps import Caller, Orch, require_user
from control.api.params import ObjectRef, ServiceId, SpaceName
from control.api.tenancy import service_of
from control.render import Rendered, render_node, render_service

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_user)], tags=["dispatch"])


def _out(rendered: Rendered) -> dict[str, Any]:
    return {
        "kind": rendered.kind,
        "name": rendered.name,
        "namespace": rendered.namespace,
        "yaml": rendered.yaml,
    }


@router.get("/spaces/{space}/nodes/{name}/render")
async def render_node_route(space: SpaceName, name: ObjectRef, orch: Orch, who: Caller) -> dict[str, Any]:
    """The Secret and Job of the node's next run on Kubernetes, as YAML."""

    def render(ses: Session) -> Rendered:
        space_for(ses, who, space)
        return render_node(ses, orch.settings, space=space, name=name)

    return _out(await orch.db(render))


@router.get("/services/{service_id}/render")
async def render_service_route(service_id: ServiceId, orch: Orch, who: Caller) -> dict[str, Any]:
    """The Secret, Deployment, Service (and HPA) of an inference service on Kubernetes, as YAML."""

    def render(ses: Session) -> Rendered:
        service_of(ses, who, service_id)
        return render_service(ses, orch.settings, service_id=service_id)

    return _out(await orch.db(render))
