"""The client's calls about a run's artifacts (mixed into `AsyncControlClient`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from control.schemas.artifacts import ArtifactOut, ArtifactReport

API = "/api/v1"


class ArtifactsCalls:
    """`/api/v1/runs/{run_id}/artifacts`: the agent reports outputs (run token), users list them."""

    async def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        raise NotImplementedError

    async def report_artifacts(self, run_id: int, reports: Sequence[ArtifactReport]) -> int:
        """Store the run's sink datasets and declared files (the agent's call); returns how many."""
        body = {"artifacts": [r.model_dump(mode="json", by_alias=True) for r in reports]}
        result: dict[str, int] = await self.request("POST", f"{API}/runs/{run_id}/artifacts", json=body)
        return int(result.get("stored", 0))

    async def run_artifacts(self, run_id: int) -> list[ArtifactOut]:
        """Every output run `run_id` left: model version, metrics, sink datasets, declared files."""
        rows = await self.request("GET", f"{API}/runs/{run_id}/artifacts")
        return [ArtifactOut.model_validate(row) for row in rows]
