"""How the agent tells the world about its run: control over HTTP, or log lines when there is no control.

`ControlCallbacks` wraps `control.client.AsyncControlClient` with the run token; `LogCallbacks`
turns every call into a log line (`run --spec`, `dev`); `RecordingCallbacks` also keeps them
for `runtime_agent.testing.AgentRunner`. Only the state reports and the spec fetch may fail a
run: heartbeats and metrics are best effort (a control hiccup must not kill a training run).
"""

from __future__ import annotations

import logging
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

    async def report_state(self, state: RunState, reason: str = "") -> None:
        """Propose a state change (running, succeeded, failed, stopped)."""
        logger.info("state -> %s%s", state, f" ({reason})" if reason else "")

    async def heartbeat(self, beat: Heartbeat) -> bool:
        """Send a heartbeat; True when the run was asked to stop."""
        logger.debug("heartbeat stage=%s rows_read=%s", beat.stage, beat.rows_read)
        return False

    async def report_metrics(self, report: MetricReport) -> None:
        """Send live metrics."""
        shown = ", ".join(f"{k}={v:.6g}" for k, v in report.values.items())
        logger.info("metrics step %d: %s", report.step, shown)

    async def register_model_version(self, report: ModelVersionReport) -> ModelVersionAssigned | None:
        """Record a new model version; returns what control assigned (None without control)."""
        logger.info("model version: %s (score %.6g)", report.model_address, report.model_score)
        return None

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
    heartbeats: list[Heartbeat] = field(default_factory=list)
    metrics: list[MetricReport] = field(default_factory=list)
    model_versions: list[ModelVersionReport] = field(default_factory=list)
    finishes: list[TaskEvent] = field(default_factory=list)
    stop_after_heartbeats: int | None = None

    async def report_state(self, state: RunState, reason: str = "") -> None:
        self.states.append((state, reason))
        await super().report_state(state, reason)

    async def heartbeat(self, beat: Heartbeat) -> bool:
        self.heartbeats.append(beat)
        return self.stop_after_heartbeats is not None and len(self.heartbeats) >= self.stop_after_heartbeats

    async def report_metrics(self, report: MetricReport) -> None:
        self.metrics.append(report)
        await super().report_metrics(report)

    async def register_model_version(self, report: ModelVersionReport) -> ModelVersionAssigned | None:
        self.model_versions.append(report)
        await super().register_model_version(report)
        return ModelVersionAssigned(model_version=f"v{len(self.model_versions)}", model_version_id=0)

    async def running_auto_finish(self, event: TaskEvent) -> None:
        self.finishes.append(event)
        await super().running_auto_finish(event)


class ControlCallbacks(Callbacks):
    """Callbacks to a control server, authenticated with the run token.

    Args:
        client: an `AsyncControlClient` built with the run token.
        run_id: the runtime id.
    """

    live = True

    def __init__(self, client: AsyncControlClient, run_id: int) -> None:
        self.client = client
        self.run_id = run_id

    async def task_spec(self) -> TaskSpec:
        return await self.client.task_spec(self.run_id)

    async def report_state(self, state: RunState, reason: str = "") -> None:
        await super().report_state(state, reason)
        await self.client.report_state(self.run_id, StateReport(state=state, reason=reason[:2000]))

    async def heartbeat(self, beat: Heartbeat) -> bool:
        try:
            answer: dict[str, Any] = await self.client.heartbeat(self.run_id, beat) or {}
        except ControlAPIError as exc:
            logger.warning("heartbeat not delivered: %s", exc)
            return False
        return bool(answer.get("stop"))

    async def report_metrics(self, report: MetricReport) -> None:
        await super().report_metrics(report)
        try:
            await self.client.report_metrics(self.run_id, report)
        except ControlAPIError as exc:
            logger.warning("metrics for step %d not delivered: %s", report.step, exc)

    async def register_model_version(self, report: ModelVersionReport) -> ModelVersionAssigned | None:
        await super().register_model_version(report)
        assigned = await self.client.register_model_version(self.run_id, report)
        logger.info("control registered model version %s", assigned.model_version)
        return assigned

    async def running_auto_finish(self, event: TaskEvent) -> None:
        await super().running_auto_finish(event)
        result = await self.client.running_auto_finish(event)
        logger.info("control: %s", result.msg)

    async def aclose(self) -> None:
        await self.client.aclose()
