"""The client's calls about governing spaces: their quotas and their audit trail (mixed into
`AsyncControlClient`)."""

from __future__ import annotations

from typing import Any

API = "/api/v1"


class GovernanceCalls:
    """`/api/v1/spaces/{space}/quota`, `/api/v1/spaces/{space}/audit` and `/api/v1/audit`."""

    async def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        raise NotImplementedError

    async def audit(
        self,
        space: str | None = None,
        *,
        since: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """A page of the audit trail, newest first: `{"items": [...], "total": n}`.

        A space's events (its owners may read them), or with `space` None every event (site admins).
        """
        path = f"{API}/spaces/{space}/audit" if space is not None else f"{API}/audit"
        params = {
            "since": since,
            "actor": actor,
            "action": action,
            "kind": kind,
            "limit": limit,
            "offset": offset,
        }
        result: dict[str, Any] = await self.request("GET", path, params=params)
        return result

    async def get_quota(self, space: str) -> dict[str, Any]:
        """The space's quota: `limits` and `used` (cpu, gpu, memory in MiB), held `reservations`."""
        result: dict[str, Any] = await self.request("GET", f"{API}/spaces/{space}/quota")
        return result

    async def set_quota(
        self, space: str, *, cpu: float | None, gpu: int | None, memory: int | None
    ) -> dict[str, Any]:
        """Set the space's limits (None: no limit; memory in MiB). Site admins only."""
        body = {"cpu": cpu, "gpu": gpu, "memory": memory}
        result: dict[str, Any] = await self.request("PUT", f"{API}/spaces/{space}/quota", json=body)
        return result
