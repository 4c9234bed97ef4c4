"""The client's calls about a run's hyper-parameter search trials (mixed into `AsyncControlClient`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from control.schemas.trials import TrialList, TrialReport

API = "/api/v1"


class TrialsCalls:
    """`/api/v1/runs/{run_id}/trials`: the agent reports trials (run token), users list them."""

    async def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        raise NotImplementedError

    async def report_trials(self, run_id: int, trials: Sequence[TrialReport]) -> int:
        """Upsert trials by trialId (the agent's call); returns how many were stored."""
        body = [t.model_dump(mode="json", by_alias=True) for t in trials]
        result: dict[str, int] = await self.request("POST", f"{API}/runs/{run_id}/trials", json=body)
        return int(result.get("stored", 0))

    async def run_trials(self, run_id: int) -> TrialList:
        """Every trial of run `run_id`'s search, best first."""
        return TrialList.model_validate(await self.request("GET", f"{API}/runs/{run_id}/trials"))
