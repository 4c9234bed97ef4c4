"""Mirroring: copy a share of the inference requests to a candidate version and compare its answers.

A copy runs in the background and never delays or changes the primary's answer. At most `limit`
copies are in flight; copies beyond that are dropped and counted, so a slow candidate cannot pile up
memory. Per copy the candidate's status and latency are recorded and its body is compared with the
primary's (structurally when both are JSON, byte for byte otherwise); the last
`KEEP_DIFFERENCES` differences are kept for `GET stats`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runtime_agent.front.stats import Counters
from runtime_agent.front.upstream import UpstreamError

if TYPE_CHECKING:
    from runtime_agent.front.balance import VersionPool
    from runtime_agent.front.upstream import Answer, Headers, Upstream

__all__ = ["KEEP_DIFFERENCES", "Mirror", "same_body"]

logger = logging.getLogger(__name__)

KEEP_DIFFERENCES = 50
BODY_CHARS = 1024
"""How much of each body a kept difference shows."""


def same_body(a: bytes, b: bytes) -> bool:
    """True when the bodies are equal: as JSON values when both parse, else as bytes."""
    if a == b:
        return True
    try:
        return bool(json.loads(a) == json.loads(b))
    except (ValueError, UnicodeDecodeError):
        return False


def _text(body: bytes) -> str:
    text = body[: BODY_CHARS * 4].decode("utf-8", "replace")
    return text if len(text) <= BODY_CHARS else text[:BODY_CHARS] + "..."


class Mirror:
    """Sends the copies and keeps their record (reset when the candidate version changes)."""

    def __init__(self, upstream: Upstream, *, limit: int = 32) -> None:
        self._upstream = upstream
        self.limit = limit
        self._tasks: set[asyncio.Task[None]] = set()
        self.version: str | None = None
        self.percent = 0
        self._reset()

    def _reset(self) -> None:
        self.counters = Counters()
        self.same = 0
        self.different = 0
        self.failed = 0
        self.dropped = 0
        self.statuses: Counter[int] = Counter()
        self.differences: deque[dict[str, Any]] = deque(maxlen=KEEP_DIFFERENCES)

    def configure(self, version: str | None, percent: int) -> None:
        """Follow a new routing table; the record restarts when the candidate changes."""
        if version != self.version:
            self._reset()
        self.version, self.percent = version, percent

    def copy(
        self,
        candidate: VersionPool,
        method: str,
        target: str,
        headers: Headers,
        body: bytes,
        primary: asyncio.Future[Answer | None],
    ) -> None:
        """Send a copy in the background (or drop it when `limit` copies are in flight)."""
        if len(self._tasks) >= self.limit:
            self.dropped += 1
            return
        task = asyncio.create_task(self._run(candidate, method, target, headers, body, primary))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self,
        candidate: VersionPool,
        method: str,
        target: str,
        headers: Headers,
        body: bytes,
        primary: asyncio.Future[Answer | None],
    ) -> None:
        counters = self.counters  # the record this copy belongs to, even if a new candidate comes
        started = counters.start()
        replica = candidate.choose()
        answer: Answer | None = None
        try:
            if replica is None:
                raise UpstreamError(f"version {candidate.version} has no replicas")
            v_started, r_started = candidate.counters.start(), replica.counters.start()
            try:
                answer = await self._upstream.send(replica.url, method, target, headers, body)
            finally:
                bad = answer is None or answer.status >= 500
                candidate.counters.finish(v_started, error=bad)
                replica.counters.finish(r_started, error=bad)
        except UpstreamError as exc:
            counters.finish(started, error=True)
            if counters is self.counters:
                self.failed += 1
            logger.debug("mirror copy to version %s failed: %s", candidate.version, exc)
            return
        latency = counters.finish(started, error=answer.status >= 500)
        theirs = await primary
        if counters is not self.counters or theirs is None:
            return
        self.statuses[answer.status] += 1
        if theirs.status == answer.status and same_body(theirs.body, answer.body):
            self.same += 1
            return
        self.different += 1
        self.differences.append(
            {
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "method": method,
                "path": target,
                "primaryStatus": theirs.status,
                "candidateStatus": answer.status,
                "candidateMs": round(latency * 1000, 2),
                "primaryBody": _text(theirs.body),
                "candidateBody": _text(answer.body),
            }
        )

    def view(self) -> dict[str, Any]:
        """The `mirror` part of `GET stats`."""
        counts = self.counters.view()
        return {
            "version": self.version,
            "percent": self.percent,
            "mirrored": counts["requests"],
            "inFlight": counts["inFlight"],
            "same": self.same,
            "different": self.different,
            "failed": self.failed,
            "dropped": self.dropped,
            "limit": self.limit,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "p50Ms": counts["p50Ms"],
            "p99Ms": counts["p99Ms"],
            "differences": list(self.differences),
        }

    async def aclose(self) -> None:
        """Cancel the copies still in flight (the front is stopping)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)
