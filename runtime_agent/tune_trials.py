"""The driver's record of a Ray Tune search's trials: what each reported, how it ended, the best.

Tune's callbacks (on its own thread) write here; the agent reads changed trials to report them to
control. No Ray import: the search module (`runtime_agent.tune`) feeds it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from control.schemas.trials import TrialReport, TrialState
from runtime_agent.tune_space import plain

HIDDEN_KEYS = frozenset(
    {
        "training_iteration", "time_total_s", "episodes_total", "timesteps_total", "node_ip", "hostname",
        "pid", "time_this_iter_s", "timestamp", "date", "time_since_restore", "timesteps_since_restore",
        "iterations_since_restore", "config", "checkpoint_dir_name", "done", "trial_id", "experiment_tag",
        "should_checkpoint",
    }
)  # fmt: skip


def user_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The numbers the trial reported, without Tune's own bookkeeping keys."""
    out: dict[str, float] = {}
    for key, value in result.items():
        if key in HIDDEN_KEYS or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(float(value)):
            out[str(key)] = float(value)
    return out


@dataclass
class TrialRecord:
    trial_id: str
    params: dict[str, Any] = field(default_factory=dict)
    state: TrialState = TrialState.RUNNING
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[tuple[int, float]] = field(default_factory=list)
    reports: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    score: float | None = None
    best: bool = False
    error: str = ""

    def wire(self) -> TrialReport:
        return TrialReport(
            trial_id=self.trial_id,
            params=self.params,
            state=self.state,
            metrics=self.metrics,
            history=list(self.history),
            score=self.score,
            best=self.best,
        )


def _nothing() -> None:
    return None


class TrialBook:
    """Every trial as Tune's callbacks saw it (thread-safe: Tune calls in from its own thread)."""

    def __init__(self, metric: str, notify: Callable[[], None] | None = None) -> None:
        self.metric = metric
        self.notify = notify or _nothing
        self.records: dict[str, TrialRecord] = {}
        self.stopped_early: set[str] = set()
        self._changed: set[str] = set()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks and scheduler with the experiment state (for a restore): that
        # copy records nothing, so the lock and the event-loop hook stay behind
        state = dict(self.__dict__)
        state["notify"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.notify = _nothing
        self._lock = threading.Lock()

    def _record(self, trial_id: str) -> TrialRecord:
        if trial_id not in self.records:
            self.records[trial_id] = TrialRecord(trial_id)
        return self.records[trial_id]

    def started(self, trial_id: str, params: dict[str, Any]) -> None:
        with self._lock:
            self._record(trial_id).params = plain(params)
            self._changed.add(trial_id)
        self.notify()

    def result(self, trial_id: str, result: dict[str, Any]) -> None:
        values = user_metrics(result)
        step = int(result.get("training_iteration") or 0)
        with self._lock:
            record = self._record(trial_id)
            record.metrics.update(values)
            record.reports.append((step, values))
            if self.metric in values:
                record.history.append((step, values[self.metric]))
                record.score = values[self.metric]
            self._changed.add(trial_id)
        self.notify()

    def ended(self, trial_id: str, state: TrialState, error: str = "") -> None:
        with self._lock:
            record = self._record(trial_id)
            if state is TrialState.SUCCEEDED and trial_id in self.stopped_early:
                state = TrialState.STOPPED
            record.state, record.error = state, error
            self._changed.add(trial_id)
        self.notify()

    def take_changed(self) -> list[TrialReport]:
        with self._lock:
            changed, self._changed = self._changed, set()
            return [self.records[t].wire() for t in sorted(changed)]

    def all(self) -> list[TrialReport]:
        with self._lock:
            self._changed.clear()
            return [self.records[t].wire() for t in sorted(self.records)]


def error_line(error: BaseException) -> str:
    """The last line of a trial's error (`FloatingPointError: lr 0.9 diverged`), not Ray's traceback."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def pick_best(records: list[TrialRecord], mode: str) -> TrialRecord | None:
    """The finished trial with the best final score (else the best stopped one), or None."""
    for states in ((TrialState.SUCCEEDED,), (TrialState.STOPPED,)):
        scored = [r for r in records if r.state in states and r.score is not None]
        if scored:
            pick = max if mode == "max" else min
            return pick(scored, key=lambda r: (r.score, r.trial_id))
    return None


__all__ = ["HIDDEN_KEYS", "TrialBook", "TrialRecord", "error_line", "pick_best", "user_metrics"]
