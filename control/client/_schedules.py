"""The client's calls about exam schedules and backfills (mixed into `AsyncControlClient`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

from control.schemas.schedules import BackfillIn, BackfillOut, ScheduleIn, ScheduleOut

API = "/api/v1"


class ScheduleCalls:
    """`/api/v1/exams/{examId}/schedule`, `/api/v1/exams/{examId}/backfill` and `/api/v1/schedules`."""

    async def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        raise NotImplementedError

    async def set_schedule(self, exam_id: int, body: ScheduleIn | dict[str, Any]) -> ScheduleOut:
        """Create or replace the exam's schedule (`{"cron": "0 3 * * *", "timezone": ..., ...}`)."""
        if isinstance(body, BaseModel):
            body = body.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return ScheduleOut.model_validate(
            await self.request("PUT", f"{API}/exams/{exam_id}/schedule", json=body)
        )

    async def schedule(self, exam_id: int) -> ScheduleOut:
        return ScheduleOut.model_validate(await self.request("GET", f"{API}/exams/{exam_id}/schedule"))

    async def delete_schedule(self, exam_id: int) -> None:
        await self.request("DELETE", f"{API}/exams/{exam_id}/schedule")

    async def schedules(self, space: str | None = None) -> list[ScheduleOut]:
        """The schedules of the spaces the caller can read (or of `space`)."""
        found = await self.request("GET", f"{API}/schedules", params={"space": space})
        return [ScheduleOut.model_validate(row) for row in found]

    async def backfill(
        self, exam_id: int, start: date | datetime | str, end: date | datetime | str
    ) -> BackfillOut:
        """An exam run for each logical date of the schedule in [start, end] that has none yet.

        Bare dates (and naive datetimes) are read in the schedule's time zone; a bare end date
        includes its whole day.
        """
        body = BackfillIn.model_validate({"from": start, "to": end})
        payload = body.model_dump(mode="json", by_alias=True)
        return BackfillOut.model_validate(
            await self.request("POST", f"{API}/exams/{exam_id}/backfill", json=payload)
        )
