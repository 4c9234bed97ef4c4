"""The client's calls about a run's attempts and a user's re-run (mixed into `AsyncControlClient`)."""

from __future__ import annotations

from typing import Any

API = "/api/v1"


class AttemptsCalls:
    """`/api/v1/runs/{id}/attempts`, `/api/v1/runs/{id}/attempts/{n}/log` and `/api/v1/runs/{id}/rerun`."""

    async def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        raise NotImplementedError

    async def run_attempts(self, run_id: int) -> list[dict[str, Any]]:
        """The run's attempts, first to last: attempt, state, reason, failureClass, retryable, ..."""
        result: list[dict[str, Any]] = await self.request("GET", f"{API}/runs/{run_id}/attempts")
        return result

    async def attempt_log(self, run_id: int, attempt: int) -> str:
        """The log of one attempt of the run (its last 4 MiB)."""
        result: dict[str, Any] = await self.request("GET", f"{API}/runs/{run_id}/attempts/{attempt}/log")
        return str(result["text"])

    async def rerun(self, run_id: int, reason: str | None = None) -> dict[str, Any]:
        """Run an ended run again as its next attempt (same run id, same sink run key)."""
        body = {"reason": reason} if reason else None
        result: dict[str, Any] = await self.request("POST", f"{API}/runs/{run_id}/rerun", json=body)
        return result
