"""How the agent tells the world about its run: control over HTTP, or log lines when there is no control.

`ControlCallbacks` wraps `control.client.AsyncControlClient` with the run token; `LogCallbacks`
turns every call into a log line (`run --spec`, `dev`); `RecordingCallbacks` also keeps them
for `runtime_agent.testing.AgentRunner`. Calls to control are retried while it does not answer
(`runtime_agent._retry`), so a control restart does not end a run; only a final answer, or an
outage longer than the retry window, fails a state report, the spec fetch, the model version or
the finish. Heartbeats and metrics are best effort: they never fail a run.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from control.errors import ControlAPIError
from control.schemas import (
    Heartbeat,
    MetricReport,
    ModelVersionAssigned,
    ModelVersionReport,
    RunState,
    StateReport,
    TaskEvent,
    TaskSpec,
)
from control.schemas.artifacts import ArtifactReport
from control.schemas.pipeline import FailureClass
from control.schemas.trials import TrialReport
from runtime_agent._retry import ControlLink, RetryPolicy, is_transient

if TYPE_CHECKING:
    from control.client import AsyncControlClient

logger = logging.getLogger(__name__)


class Callbacks:
    """The agent's calls about one run. This base logs each call; subclasses send them somewhere."""

    #: whether metrics reach control (Ray Train workers post live only when True)
    live: bool = False

    async def task_spec(self) -> TaskSpec:
        """Fetch the run's task spec."""
        raise NotImplementedError("this run has no control to fetch its spec from")

    async def report_state(
        self,
        state: RunState,
        reason: str = "",
        *,
        failure_class: FailureClass | None = None,
        retryable: bool | None = None,
    ) -> None:
        """Propose a state change (running, succeeded, failed, stopped); a failure carries its class
        (`runtime_agent.failures`) and whether the operator opted in to retries of its own errors."""
        why = f" ({reason})" if reason else ""
        kind = f" [{failure_class.value}{', retryable' if retryable else ''}]" if failure_class else ""
        logger.info("state -> %s%s%s", state, why, kind)

    async def heartbeat(self, beat: Heartbeat) -> bool:
        """Send a heartbeat; True when the run was asked to stop."""
        logger.debug("heartbeat stage=%s rows_read=%s", beat.stage, beat.rows_read)
        return False

    async def report_metrics(self, report: MetricReport) -> None:
        """Send live metrics."""
        shown = ", ".join(f"{k}={v:.6g}" for k, v in report.values.items())
        logger.info("metrics step %d: %s", report.step, shown)

    async def report_trials(self, trials: list[TrialReport]) -> None:
        """Send the hyper-parameter search's trials (each replaces its earlier report)."""
        for trial in trials:
            best = " (best)" if trial.best else ""
            logger.info("trial %s %s score=%s%s", trial.trial_id, trial.state, trial.score, best)

    async def register_model_version(self, report: ModelVersionReport) -> ModelVersionAssigned | None:
        """Record a new model version; returns what control assigned (None without control)."""
        logger.info("model version: %s (score %.6g)", report.model_address, report.model_score)
        return None

    async def report_artifacts(self, reports: list[ArtifactReport]) -> None:
        """Report the outputs the run left (sink datasets, declared files)."""
        for item in reports:
            logger.info("output %s (%s): %s", item.name, item.kind.value, item.uri)

    async def running_auto_finish(self, event: TaskEvent) -> None:
        """Tell control the task finished (it then starts the inference service by deployType)."""
        logger.info("runningAutoFinish task %s %s", event.task_id, event.run_parameter)

    async def aclose(self) -> None:
        """Release the HTTP client."""


LogCallbacks = Callbacks
"""Callbacks with no control: every call is a log line."""


@dataclass
class RecordingCallbacks(Callbacks):
    """`LogCallbacks` that also keep every call (for tests and `AgentRunner`).

    Attributes:
        stop_after_heartbeats: answer stop=true from this heartbeat on (None: never).
    """

    states: list[tuple[RunState, str]] = field(default_factory=list)
    failures: list[tuple[FailureClass | None, bool | None]] = field(default_factory=list)
    heartbeats: list[Heartbeat] = field(default_factory=list)
    metrics: list[MetricReport] = field(default_factory=list)
    model_versions: list[ModelVersionReport] = field(default_factory=list)
    finishes: list[TaskEvent] = field(default_factory=list)
    artifacts: list[ArtifactReport] = field(default_factory=list)
    trials: dict[str, TrialReport] = field(default_factory=dict)
    stop_after_heartbeats: int | None = None

    async def report_state(
        self,
        state: RunState,
        reason: str = "",
        *,
        failure_class: FailureClass | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.states.append((state, reason))
        if state == RunState.FAILED:
            self.failures.append((failure_class, retryable))
        await super().report_state(state, reason, failure_class=failure_class, retryable=retryable)

    async def heartbeat(self, beat: Heartbeat) -> bool:
        self.heartbeats.append(beat)
        return self.stop_after_heartbeats is not None and len(self.heartbeats) >= self.stop_after_heartbeats

    async def report_metrics(self, report: MetricReport) -> None:
        self.metrics.append(report)
        await super().report_metrics(report)

    async def report_trials(self, trials: list[TrialReport]) -> None:
        self.trials.update({trial.trial_id: trial for trial in trials})
        await super().report_trials(trials)

    async def register_model_version(self, report: ModelVersionReport) -> ModelVersionAssigned | None:
        self.model_versions.append(report)
        await super().register_model_version(report)
        return ModelVersionAssigned(model_version=f"v{len(self.model_versions)}", model_version_id=0)

    async def report_artifacts(self, reports: list[ArtifactReport]) -> None:
        self.artifacts.extend(reports)
        await super().report_artifacts(reports)

    async def running_auto_finish(self, event: TaskEvent) -> None:
        self.finishes.append(event)
        await super().running_auto_finish(event)


class ControlCallbacks(Callbacks):
    """Callbacks to a control server, authenticated with the run token, that ride out its restarts.

    Every call is retried through a `ControlLink` while control does not answer (see
    `runtime_agent._retry`); control treats a repeated call as the first one, so a retry never
    records anything twice. Heartbeats are tried once each (only the latest matters). Metrics
    wait in a bounded buffer while control is down and are sent in order when it answers again;
    the buffer is drained (with retries) before the model version is registered.

    Args:
        client: an `AsyncControlClient` built with the run token.
        run_id: the runtime id.
        retry: the retry policy (window `ATOM_CONTROL_RETRY_WINDOW`).
        max_pending_metrics: metric reports kept while control is down; the oldest go first.
    """

    live = True

    def __init__(
        self,
        client: AsyncControlClient,
        run_id: int,
        *,
        retry: RetryPolicy | None = None,
        max_pending_metrics: int = 10_000,
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.link = ControlLink(client.base_url, retry)
        self.pending: deque[MetricReport] = deque()
        self.max_pending_metrics = max_pending_metrics
        self.dropped_metrics = 0
        self._flushing = asyncio.Lock()

    async def task_spec(self) -> TaskSpec:
        return await self.link.call("the task spec request", lambda: self.client.task_spec(self.run_id))

    async def report_state(
        self,
        state: RunState,
        reason: str = "",
        *,
        failure_class: FailureClass | None = None,
        retryable: bool | None = None,
    ) -> None:
        await super().report_state(state, reason, failure_class=failure_class, retryable=retryable)
        body: dict[str, Any] = {"state": state, "reason": reason[:2000]}
        failure = {"failure_class": failure_class, "retryable": retryable}
        body.update({k: v for k, v in failure.items() if v is not None})
        report = StateReport.model_validate(body)  # fields not given stay off the wire
        await self.link.call(f"state {state.value}", lambda: self.client.report_state(self.run_id, report))

    async def heartbeat(self, beat: Heartbeat) -> bool:
        try:
            answer: dict[str, Any] = (
                await self.link.once("a heartbeat", lambda: self.client.heartbeat(self.run_id, beat)) or {}
            )
        except ControlAPIError as exc:
            if not is_transient(exc):
                logger.warning("heartbeat refused: %s", exc)
            return False
        await self.flush_metrics(wait=False)
        return bool(answer.get("stop"))

    async def report_metrics(self, report: MetricReport) -> None:
        await super().report_metrics(report)
        if len(self.pending) >= self.max_pending_metrics:
            self.pending.popleft()
            self.dropped_metrics += 1
            if self.dropped_metrics == 1:
                logger.warning(
                    "control has not answered for a while: more than %d metric reports waiting; "
                    "dropping the oldest",
                    self.max_pending_metrics,
                )
        self.pending.append(report)
        await self.flush_metrics(wait=False)

    async def flush_metrics(self, *, wait: bool = True) -> None:
        """Send the waiting metric reports in order.

        Args:
            wait: retry while control is down (within the window); False sends what it can
                now and leaves the rest waiting (at most one failed attempt, paced by the
                backoff, and none while another flush is under way): it never blocks a heartbeat.

        Raises:
            ControlAPIError: `wait` and control did not answer within the window.
        """
        if not self.pending or (not wait and self._flushing.locked()):
            return
        async with self._flushing:
            while self.pending:
                report = self.pending[0]
                what = f"metrics for step {report.step}"
                send = functools.partial(self.client.report_metrics, self.run_id, report)
                try:
                    if wait:
                        await self.link.call(what, send)
                    elif self.link.probe_due():
                        await self.link.once(what, send)
                    else:
                        return
                except ControlAPIError as exc:
                    if is_transient(exc):
                        if wait:
                            raise
                        return
                    logger.warning("%s refused: %s", what, exc)
                self.pending.popleft()

    async def report_trials(self, trials: list[TrialReport]) -> None:
        await super().report_trials(trials)
        await self.link.call("the search's trials", lambda: self.client.report_trials(self.run_id, trials))

    async def register_model_version(self, report: ModelVersionReport) -> ModelVersionAssigned | None:
        await super().register_model_version(report)
        await self.flush_metrics()
        assigned = await self.link.call(
            "the model version", lambda: self.client.register_model_version(self.run_id, report)
        )
        logger.info("control registered model version %s", assigned.model_version)
        return assigned

    async def report_artifacts(self, reports: list[ArtifactReport]) -> None:
        await super().report_artifacts(reports)
        await self.link.call("the run's outputs", lambda: self.client.report_artifacts(self.run_id, reports))

    async def running_auto_finish(self, event: TaskEvent) -> None:
        await super().running_auto_finish(event)
        await self.flush_metrics()
        result = await self.link.call("runningAutoFinish", lambda: self.client.running_auto_finish(event))
        logger.info("control: %s", result.msg)

    async def aclose(self) -> None:
        if self.pending:
            logger.warning("%d metric report(s) never reached control", len(self.pending))
        await self.client.aclose()
