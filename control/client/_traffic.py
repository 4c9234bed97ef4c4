"""The client's calls about how a model's versions share its requests (mixed into `AsyncControlClient`)."""

from __future__ import annotations

from typing import Any

from control.schemas import ServiceOut

API = "/api/v1"


class TrafficCalls:
    """`/api/v1/services/{id}/promote|rollback|traffic`."""

    async def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        raise NotImplementedError

    async def promote_service(self, service_id: int) -> ServiceOut:
        """The version takes every request; the model's other versions are stopped."""
        return ServiceOut.model_validate(await self.request("POST", f"{API}/services/{service_id}/promote"))

    async def rollback_service(self, service_id: int) -> ServiceOut:
        """The version is stopped; answers the version that took its requests."""
        return ServiceOut.model_validate(await self.request("POST", f"{API}/services/{service_id}/rollback"))

    async def set_service_traffic(
        self, service_id: int, *, weight: int | None = None, mirror_percent: int | None = None
    ) -> list[ServiceOut]:
        """Set the version's share (the others keep their proportions) and/or the share mirrored to
        it; answers every ready version of the model."""
        body = {
            k: v for k, v in (("trafficWeight", weight), ("mirrorPercent", mirror_percent)) if v is not None
        }
        rows = await self.request("PUT", f"{API}/services/{service_id}/traffic", json=body)
        return [ServiceOut.model_validate(r) for r in rows]
