"""Cheap request counters for the front: O(1) per request, percentiles computed only when asked.

`Counters` keeps requests, errors and requests in flight, the latencies of the last
`WINDOW_REQUESTS` requests (a ring) and a per-second request count for the last
`RATE_SECONDS` seconds. `view()` turns them into the stats JSON (`p50Ms`, `p99Ms`, `rps`).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

__all__ = ["RATE_SECONDS", "WINDOW_REQUESTS", "Counters", "percentile"]

WINDOW_REQUESTS = 1000
"""Latency percentiles are over this many most recent requests."""
RATE_SECONDS = 10
"""Requests per second are averaged over this many seconds."""


def percentile(ordered: list[float], q: float) -> float | None:
    """The `q` quantile (0-1) of an ascending list by nearest rank; None for an empty list."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * q // 1))  # ceil(n * q), at least 1
    return ordered[int(rank) - 1]


class _Rate:
    """Requests per whole second of the monotonic clock, in a ring of RATE_SECONDS + 1 buckets."""

    __slots__ = ("_counts", "_seconds")

    def __init__(self) -> None:
        self._seconds = [-1] * (RATE_SECONDS + 1)
        self._counts = [0] * (RATE_SECONDS + 1)

    def add(self, now: float) -> None:
        second = int(now)
        slot = second % len(self._seconds)
        if self._seconds[slot] != second:
            self._seconds[slot] = second
            self._counts[slot] = 0
        self._counts[slot] += 1

    def per_second(self, now: float) -> float:
        """Requests per second over the last RATE_SECONDS whole seconds (the current one excluded)."""
        second = int(now)
        total = sum(
            c for s, c in zip(self._seconds, self._counts, strict=True) if second - RATE_SECONDS <= s < second
        )
        return total / RATE_SECONDS


class Counters:
    """Requests, errors, in flight and a latency window for one version, replica or mirror."""

    __slots__ = ("_latencies", "_rate", "errors", "in_flight", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.in_flight = 0
        self._latencies: deque[float] = deque(maxlen=WINDOW_REQUESTS)
        self._rate = _Rate()

    def start(self) -> float:
        """A request goes out; returns its start time (pass it to `finish`)."""
        self.requests += 1
        self.in_flight += 1
        now = time.monotonic()
        self._rate.add(now)
        return now

    def finish(self, started: float, *, error: bool) -> float:
        """The request ended (answered or failed); returns its latency in seconds."""
        latency = time.monotonic() - started
        self.in_flight -= 1
        if error:
            self.errors += 1
        self._latencies.append(latency)
        return latency

    def view(self) -> dict[str, Any]:
        """requests, errors, inFlight, p50Ms, p99Ms (over the window), rps (last RATE_SECONDS s)."""
        ordered = sorted(self._latencies)
        p50, p99 = percentile(ordered, 0.50), percentile(ordered, 0.99)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "inFlight": self.in_flight,
            "p50Ms": None if p50 is None else round(p50 * 1000, 2),
            "p99Ms": None if p99 is None else round(p99 * 1000, 2),
            "rps": round(self._rate.per_second(time.monotonic()), 2),
        }
