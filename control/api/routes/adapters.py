"""Dispatch targets: `GET /api/v1/adapters` lists each adapter, the runtime patterns it runs and
what its target has (`describe_resources`), without starting anything to find out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from control import schemas as s
from control.api.deps import Orch, require_user
from control.dispatch.ray import RayAdapter
from control.errors import ControlError

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_user)], tags=["dispatch"])


@router.get("/adapters", response_model=list[s.AdapterOut])
async def list_adapters(orch: Orch) -> list[s.AdapterOut]:
    """Every adapter with its patterns and resources (total and free CPU, GPU, memory)."""
    settings = orch.settings
    out = []
    for name, adapter in sorted(orch.adapters.items()):
        patterns = sorted(p for p, a in settings.dispatch_adapters.items() if a == name)
        resources: dict[str, Any] = {}
        note = ""
        if isinstance(adapter, RayAdapter) and adapter.head is not None and not adapter.head.running:
            note = "control's local Ray head starts the first time a run needs Ray"
        else:
            try:
                resources = await adapter.describe_resources()
            except ControlError as exc:
                note = str(exc)
        out.append(s.AdapterOut(name=name, patterns=patterns, resources=resources, note=note))
    return out
