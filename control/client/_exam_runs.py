"""The client's calls about exam runs: start, describe, list, resume, stop, wait (mixed into
`AsyncControlClient`)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from control.schemas.exam_runs import ExamRunOut, ExamRunPage
from control.schemas.pipeline import ExamRunState

API = "/api/v1"
ENDED = (ExamRunState.SUCCEEDED, ExamRunState.FAILED, ExamRunState.STOPPED)


class ExamRunsCalls:
    """`/api/v1/exam-runs` and `/api/v1/spaces/{space}/exams/{name}/runs`."""

    async def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        raise NotImplementedError

    async def start_exam_run(
        self,
        exam: str | int,
        *,
        space: str = "default",
        envs: dict[str, str] | None = None,
        run_parameter: dict[str, str] | None = None,
    ) -> ExamRunOut:
        """Start exam `exam` (its name or id) of `space`; roots start now, the rest as their parents end."""
        body = {"envs": envs or {}, "runParameter": run_parameter or {}}
        out = await self.request("POST", f"{API}/spaces/{space}/exams/{exam}/runs", json=body)
        return ExamRunOut.model_validate(out)

    async def exam_run(self, exam_run_id: int) -> ExamRunOut:
        """One exam run with its runs (upstream first) and its DAG's edges."""
        return ExamRunOut.model_validate(await self.request("GET", f"{API}/exam-runs/{exam_run_id}"))

    async def exam_runs(
        self,
        *,
        space: str | None = None,
        exam_id: int | None = None,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> ExamRunPage:
        """Exam runs, newest first (without their runs)."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        for key, value in (("space", space), ("examId", exam_id), ("state", state)):
            if value is not None:
                params[key] = value
        return ExamRunPage.model_validate(await self.request("GET", f"{API}/exam-runs", params=params))

    async def resume_exam_run(self, exam_run_id: int) -> ExamRunOut:
        """Run a failed or stopped exam run again from its failed, stopped and skipped nodes."""
        return ExamRunOut.model_validate(await self.request("POST", f"{API}/exam-runs/{exam_run_id}/resume"))

    async def stop_exam_run(self, exam_run_id: int, reason: str = "stopped by user") -> ExamRunOut:
        out = await self.request("POST", f"{API}/exam-runs/{exam_run_id}/stop", json={"reason": reason})
        return ExamRunOut.model_validate(out)

    async def wait_exam_run(
        self,
        exam_run_id: int,
        timeout: float = 600.0,  # noqa: ASYNC109
        *,
        poll: float = 0.5,
    ) -> ExamRunOut:
        """Poll until the exam run has ended (succeeded, failed or stopped).

        Raises:
            TimeoutError: it has not ended after `timeout` seconds (its last state named).
        """
        deadline = time.monotonic() + timeout
        while True:
            er = await self.exam_run(exam_run_id)
            if er.state in ENDED:
                return er
            if time.monotonic() >= deadline:
                raise TimeoutError(f"exam run {exam_run_id} is still {er.state.value} after {timeout:g} s")
            await asyncio.sleep(poll)
