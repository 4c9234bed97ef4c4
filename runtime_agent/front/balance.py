"""Which version and which replica answer a request: smooth weighted round-robin, then least outstanding.

Both choices are deterministic. Versions: nginx's smooth weighted round-robin, so weights 10/90 give
exactly 10 and 90 of every 100 requests, interleaved. Replicas: the fewest requests in flight, ties
taken round-robin; a replica that just refused a connection is passed over for `EJECT_SECONDS`
unless every replica of the version is.

`Replica` and `VersionPool` outlive routing tables (the front keeps them by version and URL), so
requests already sent to a version finish and stay counted after a table drops it.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

from runtime_agent.front.stats import Counters

__all__ = ["EJECT_SECONDS", "Replica", "SmoothWeighted", "VersionPool"]

EJECT_SECONDS = 2.0
"""How long a replica that refused a connection is passed over (when another can answer)."""


class SmoothWeighted:
    """Smooth weighted round-robin over indexes 0..n-1 (weights > 0)."""

    __slots__ = ("_current", "_total", "_weights")

    def __init__(self, weights: Sequence[int]) -> None:
        if not weights or any(w <= 0 for w in weights):
            raise ValueError("smooth weighted round-robin needs positive weights")
        self._weights = tuple(weights)
        self._total = sum(weights)
        self._current = [0] * len(weights)

    def pick(self) -> int:
        """The next index: every weight is added, the largest current wins and pays the total."""
        current = self._current
        best = 0
        for i, w in enumerate(self._weights):
            current[i] += w
            if current[i] > current[best]:
                best = i
        current[best] -= self._total
        return best


class Replica:
    """One `atom-runtime serve` process of a version: its URL, counters, and a connect-failure mark."""

    __slots__ = ("connect_errors", "counters", "ejected_until", "in_table", "url")

    def __init__(self, url: str) -> None:
        self.url = url
        self.counters = Counters()
        self.connect_errors = 0
        self.ejected_until = 0.0
        self.in_table = True

    def refused(self) -> None:
        """A connection could not be made: pass this replica over for a while."""
        self.connect_errors += 1
        self.ejected_until = time.monotonic() + EJECT_SECONDS

    def view(self) -> dict[str, object]:
        return {
            "url": self.url,
            "inTable": self.in_table,
            **self.counters.view(),
            "connectErrors": self.connect_errors,
        }


class VersionPool:
    """The replicas of one version and the version's own counters."""

    __slots__ = ("_next", "counters", "replicas", "retired", "version", "weight")

    def __init__(self, version: str) -> None:
        self.version = version
        self.weight = 0
        self.counters = Counters()
        self.replicas: tuple[Replica, ...] = ()
        """The replicas of the current table, in its order."""
        self.retired: dict[str, Replica] = {}
        """Replicas a table dropped while requests to them were in flight (kept until they end)."""
        self._next = 0

    def update(self, weight: int, urls: Sequence[str]) -> None:
        """Take the weight and replica list of a new table; keep the counters of known replicas."""
        known = {r.url: r for r in self.replicas} | self.retired
        self.replicas = tuple(known.pop(url) if url in known else Replica(url) for url in urls)
        for r in self.replicas:
            r.in_table = True
        for r in known.values():
            r.in_table = False
        self.retired = {url: r for url, r in known.items() if r.counters.in_flight > 0}
        self.weight = weight
        self._next = 0

    def idle(self) -> bool:
        """No request to this version is in flight."""
        return self.counters.in_flight == 0

    def choose(self, exclude: Collection[Replica] = ()) -> Replica | None:
        """The replica with the fewest requests in flight (ties round-robin), skipping `exclude`.

        Replicas that refused a connection lately come last. None when no replica is left.
        """
        replicas = self.replicas
        n = len(replicas)
        if not n:
            return None
        start = self._next
        self._next = (start + 1) % n
        now = time.monotonic()
        best: Replica | None = None
        best_key = (True, 0)
        for i in range(n):
            r = replicas[(start + i) % n]
            if r in exclude:
                continue
            key = (r.ejected_until > now, r.counters.in_flight)
            if best is None or key < best_key:
                best, best_key = r, key
        return best

    def view(self, *, in_table: bool) -> dict[str, object]:
        replicas = [*self.replicas, *self.retired.values()]
        return {
            "version": self.version,
            "weight": self.weight if in_table else 0,
            "inTable": in_table,
            **self.counters.view(),
            "replicas": [r.view() for r in replicas],
        }
