"""Parallel key ranges of MYSQL reads by an integer key: queries in flight, handed back in key order.

`RangeWindow` keeps `width` queries `WHERE key > lo AND key <= hi ORDER BY key LIMIT cap` running
at once (connectorx releases the GIL), each range sized from the key density seen so far to hold
about `rows_per_range` rows, and hands the results back strictly in key order. Ranges are
scheduled ahead without waiting for each other, so the server and the client stay busy across
page boundaries (no barrier per page).

Correctness does not depend on the density guess: a range that hits its LIMIT is continued
after its last key (split again into `width` pieces) before anything later is handed back. After
an empty range the next existing key is looked up (one index probe), and when it lies beyond
every range in flight the window jumps there, so gaps in the keys cost one query, not many.
`after` is always the end of a complete prefix: every row with a key <= `after` has been handed
back, none with a larger one.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pyarrow as pa

Submit = Callable[[int, int, int], "Future[Any]"]
"""`submit(lo, hi, limit)`: start fetching keys in (lo, hi], at most `limit` rows, in key order."""


class RangeWindow:
    """Key ranges fetched ahead in parallel and handed back in order (see the module docstring)."""

    def __init__(
        self,
        *,
        after: int,
        density: float,
        max_key: int,
        rows_per_range: int,
        cap: int,
        width: int,
        submit: Submit,
        last_key: Callable[[pa.Table], int],
        probe: Callable[[int], int | None],
    ) -> None:
        """Start scheduling ranges after `after`, up to `max_key` (the largest key when the read began).

        Args:
            after: keys up to here are done.
            density: rows per key unit seen so far (1.0 for gapless keys).
            max_key: ranges stop here; later rows belong to the caller's plain keyset pages.
            rows_per_range: rows each range should hold.
            cap: LIMIT of each range query.
            width: queries in flight.
            submit: starts one range query.
            last_key: the key of a result's last row.
            probe: the smallest existing key greater than a value (None: there is none).
        """
        self.after = after
        self.density = _clamp(density)
        self.max_key = max_key
        self.rows_per_range = max(1, rows_per_range)
        self.cap = max(1, cap)
        self.width = max(1, width)
        self._submit = submit
        self._last_key = last_key
        self._probe = probe
        self._next = after
        self._inflight: collections.deque[tuple[int, int, Future[Any]]] = collections.deque()

    @property
    def step(self) -> int:
        return max(1, math.ceil(self.rows_per_range / self.density))

    def next(self) -> Any | None:
        """The next range's rows in key order; None once every range up to `max_key` is handed back.

        Raises:
            Whatever the submitted fetch raised (the window is then unusable: `close()` it).
        """
        while len(self._inflight) < self.width and self._next < self.max_key:
            low = self._next
            self._next = min(low + self.step, self.max_key)
            self._inflight.append((low, self._next, self._submit(low, self._next, self.cap)))
        if not self._inflight:
            return None
        low, high, future = self._inflight.popleft()
        table = future.result()
        if len(table) >= self.cap:  # more rows in (low, high] than fetched: the rest comes next
            last = self._last_key(table)
            self.density = _clamp(len(table) / max(1, last - low))
            self._continue(last, high)
            self.after = last
        elif len(table):
            self.after = high
            self.density = _clamp(len(table) / max(1, high - low))
        else:
            self.after = high
            self._skip_gap()
        return table

    def _skip_gap(self) -> None:
        """After an empty range: jump to the next existing key when every range in flight is before it."""
        following = self._probe(self.after)
        if following is not None and following <= self._next:
            return  # a range in flight holds it
        self.close()
        if following is None:
            self._next = self.max_key  # nothing left up to the largest key
        else:
            self.after = self._next = min(following - 1, self.max_key)

    def _continue(self, low: int, high: int) -> None:
        """Re-queue (low, high] at the front, cut into pieces of the new step."""
        pieces: list[tuple[int, int]] = []
        while low < high and len(pieces) < self.width - 1:
            end = min(high, low + self.step)
            pieces.append((low, end))
            low = end
        if low < high:
            pieces.append((low, high))
        for start, end in reversed(pieces):
            self._inflight.appendleft((start, end, self._submit(start, end, self.cap)))

    def close(self) -> None:
        """Forget the ranges in flight (queries already running finish in the background)."""
        for _, _, future in self._inflight:
            future.cancel()
        self._inflight.clear()


def _clamp(density: float) -> float:
    return min(1.0, max(1e-300, density))
