"""`StageTimings`: the seconds one run spends in each fixed-cost stage, logged as one parseable line.

The agent logs `timings: ray_connect=1.92 train_start=6.10 train=0.84 ... total=12.40` when a run
ends; `benchmarks/run_overhead.py` parses that line to rank the fixed costs.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator

ORDER = (
    "code_fetch",
    "load",
    "read",
    "plan",
    "ray_import",
    "ray_connect",
    "train_start",
    "train",
    "train_stop",
    "sink_write",
    "model_upload",
    "callbacks",
)
"""Stages in the order the line lists them; other names follow in the order they were recorded."""

LINE = re.compile(r"timings: (.*)$")


class StageTimings:
    """Seconds per stage of one run (a stage timed twice adds up)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._began = time.perf_counter()

    def add(self, stage: str, seconds: float) -> None:
        """Add `seconds` to `stage`."""
        self.seconds[stage] = self.seconds.get(stage, 0.0) + max(0.0, seconds)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as `name` (also when it raises)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def line(self) -> str:
        """`timings: ray_connect=1.92 train=0.84 ... total=12.40` (seconds, known stages first)."""
        names = [n for n in ORDER if n in self.seconds] + [n for n in self.seconds if n not in ORDER]
        parts = [f"{name}={self.seconds[name]:.2f}" for name in names]
        parts.append(f"total={time.perf_counter() - self._began:.2f}")
        return "timings: " + " ".join(parts)


def parse_line(text: str) -> dict[str, float]:
    """The stage -> seconds of the last `timings:` line in a log (empty when there is none)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = LINE.search(line)
        if match:
            found = {}
            for part in match.group(1).split():
                name, _, value = part.partition("=")
                try:
                    found[name] = float(value)
                except ValueError:
                    continue
    return found


__all__ = ["StageTimings", "parse_line"]
