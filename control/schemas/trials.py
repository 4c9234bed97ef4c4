"""Trials of a run's hyper-parameter search on the wire: what the agent reports, what users read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from control.schemas._base import Int64, JsonObject, Real, Str64, Str128, StrEnum, Wire

MAX_TRIALS_PER_REPORT = 1000
MAX_HISTORY = 10_000


class TrialState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    """Stopped early by the scheduler (ASHA): its intermediate metric lagged."""


HistoryPoint = Annotated[tuple[Int64, Real], Field(description="[step, value] of the search metric")]


class TrialReport(Wire):
    """One trial as the agent reports it; reporting the same trialId again replaces it."""

    trial_id: Str64 = Field(min_length=1)
    params: JsonObject = Field(default_factory=dict)
    """The trial's sampled hyper-parameters (merged into its operatorConf)."""
    state: TrialState = TrialState.RUNNING
    metrics: dict[Str128, Real] = Field(default_factory=dict, max_length=1000)
    """The latest value of every metric the trial reported."""
    history: list[HistoryPoint] = Field(default_factory=list, max_length=MAX_HISTORY)
    """`[step, value]` of the search metric, one per report."""
    score: Real | None = None
    """The search metric's final (last reported) value."""
    best: bool = False
    """The trial whose model the run registered."""


TrialReports = Annotated[list[TrialReport], Field(max_length=MAX_TRIALS_PER_REPORT)]


class TrialOut(Wire):
    trial_id: str
    params: dict[str, Any]
    state: TrialState
    metrics: dict[str, float]
    history: list[tuple[int, float]]
    score: float | None
    best: bool
    updated_at: datetime


class TrialList(Wire):
    run_id: int
    metric: str | None = None
    """The search metric (from the run's operator searchConf), when known."""
    mode: str | None = None
    items: list[TrialOut]


__all__ = ["MAX_HISTORY", "TrialList", "TrialOut", "TrialReport", "TrialReports", "TrialState"]
