"""Cron schedules of exams on the wire: the schedule a user sets, its view, and backfills.

`cron` and `timezone` are checked where they enter (croniter and zoneinfo), so a bad one is
refused with its field named and nothing stored. Start and end may be dates or datetimes; naive
ones are read in the schedule's time zone. Times sent back are UTC (`...Z`-less ISO 8601).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

from control.errors import InvalidSpec
from control.schemas._base import Str64, Str128, Wire
from control.schemas.pipeline import ConcurrencyPolicy


def _cron(value: str) -> str:
    from control.pipeline.schedules import parse_cron

    try:
        return parse_cron(value)
    except InvalidSpec as exc:
        raise ValueError(exc.errors[0]["msg"] if exc.errors else str(exc)) from None


def _zone(value: str) -> str:
    from control.pipeline.schedules import parse_zone

    try:
        parse_zone(value)
    except InvalidSpec as exc:
        raise ValueError(exc.errors[0]["msg"] if exc.errors else str(exc)) from None
    return value


CronText = Annotated[Str128, AfterValidator(_cron)]
ZoneName = Annotated[Str64, AfterValidator(_zone)]


def _day(value: object) -> object:
    """`2031-01-03` is a date (a whole day), `2031-01-03T03:00` (with or without an offset) a datetime."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise ValueError(f"{value!r} is not a date (2031-01-03) or a datetime (2031-01-03T03:00)") from None


When = Annotated[datetime | date, BeforeValidator(_day)]
"""A date (`2031-01-03`: that day) or a datetime; naive ones are read in the schedule's zone."""


class ScheduleIn(Wire):
    """An exam's schedule: fire an exam run at each cron time between start and end."""

    cron: CronText
    """Five fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly, ..."""
    timezone: ZoneName = "UTC"
    """The IANA zone the cron expression (and a naive start or end) is read in."""
    start: When | None = None
    """No fire before this (default: from now on)."""
    end: When | None = None
    """No fire after this (default: never ends)."""
    concurrency: ConcurrencyPolicy = ConcurrencyPolicy.SKIP
    """While the previous exam run still goes: skip this fire, queue it, or stop the previous one."""
    enabled: bool = True


class ScheduleOut(Wire):
    id: int
    space: str
    exam_id: int
    exam_name: str
    cron: str
    timezone: str
    start_at: datetime | None = None
    end_at: datetime | None = None
    concurrency: ConcurrencyPolicy
    enabled: bool
    next_fire_at: datetime | None = None
    """UTC; None when disabled or past the end."""
    last_fire_at: datetime | None = None
    last_run_id: int | None = None
    last_run_state: str | None = None
    last_skip: str | None = None
    """Why the latest skipped fire was skipped (the previous exam run still went, catch-up limit...)."""
    queued: int = 0
    """Exam runs of this schedule waiting for the previous one to end (policy queue, backfills)."""
    created_at: datetime | None = None
    updated_at: datetime | None = None


class BackfillIn(Wire):
    """Run the exam for every logical date its cron names in [from, to] that has no run yet."""

    start: When = Field(alias="from")
    end: When = Field(alias="to")


class ExamRunBrief(Wire):
    id: int
    logical_date: datetime | None = None
    state: str
    trigger: str
    reason: str = ""


class BackfillOut(Wire):
    created: list[ExamRunBrief]
    """The exam runs made, oldest logical date first (they run one after another)."""
    existing: int = 0
    """Logical dates in the range that already had an exam run (left alone)."""


__all__ = ["BackfillIn", "BackfillOut", "ExamRunBrief", "ScheduleIn", "ScheduleOut"]
