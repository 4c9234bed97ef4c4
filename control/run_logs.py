"""Run logs kept by control: what an agent ships of its output, reading a log by byte offset, retention.

An agent that runs where control cannot read its disk (a Ray job, a container, a pod) sends its
output in batches (`POST /api/v1/agent/runs/{id}/logs`, `{offset, text}`). Control appends to
`{runs_dir}/{id}/shipped.log` only the bytes beyond what it already holds, so a retried batch never
writes a line twice; a batch that starts beyond them (output the agent could not keep while control
was away) leaves a one-line mark of the gap. `GET /api/v1/runs/{id}/logs` reads the shipped log when
there is one, else the run's log file (a local agent's own output, or the copy a remote adapter
collected), so a run's log outlives its process, job, container or pod.

Runs that ended more than `log_retention_days` ago lose their log files and metric points (`sweep`,
run by the reconcile loop about once an hour).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from control.schemas import RunState
from control.store import models as m

logger = logging.getLogger(__name__)
T = TypeVar("T")

SHIPPED = "shipped.log"
SHIFT = "shipped.shift"
"""Holds the agent's stream position minus the shipped log's size: 0 until a gap was marked."""
END = "shipped.end"
"""Exists once the agent sent its last batch (it exited)."""
QUIET = 60.0
"""Seconds without a batch after which a shipped log counts as whole even without its last batch
(an agent killed before it could send it)."""
ENDED = (RunState.SUCCEEDED.value, RunState.FAILED.value, RunState.STOPPED.value)
SWEEP_EVERY = 3600.0
"""Seconds between two retention sweeps (the first runs with the first reconcile pass)."""

_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(run_id: int) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(run_id, threading.Lock())


def shipped_path(runs_dir: Path, run_id: int) -> Path:
    """Where control keeps what run `run_id`'s agent shipped of its output."""
    return runs_dir / str(run_id) / SHIPPED


def _shift(path: Path) -> int:
    try:
        return int(path.with_name(SHIFT).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def received(runs_dir: Path, run_id: int) -> int:
    """How far into its agent's output stream control holds run `run_id`'s log (bytes)."""
    path = shipped_path(runs_dir, run_id)
    with _lock(run_id):
        return _size(path) + _shift(path)


def append(runs_dir: Path, run_id: int, *, offset: int, text: str, final: bool = False) -> int:
    """Keep `text`, the agent's output from byte `offset` of its stream, without repeating bytes.

    Args:
        final: the agent's last batch (it exits): a reader of the ended run's log may stop at its end.

    Returns:
        How far into the stream control now holds the log (the agent may forget what lies before).
    """
    path = shipped_path(runs_dir, run_id)
    with _lock(run_id):
        got = _append(path, offset=offset, data=text.encode("utf-8"))
        marker = path.with_name(END)
        if final:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        elif text:
            marker.unlink(missing_ok=True)  # an agent started again for the run: more follows
        return got


def _append(path: Path, *, offset: int, data: bytes) -> int:
    size, shift = _size(path), _shift(path)
    have = size + shift
    end = offset + len(data)
    if end <= have:
        return have  # a batch sent again: control already holds it
    path.parent.mkdir(parents=True, exist_ok=True)
    if offset > have:
        lead = b"" if size == 0 or _ends_with_newline(path) else b"\n"
        mark = f"[{offset - have} bytes of the agent's output were lost here]\n".encode()
        chunk = lead + mark + data
    else:
        chunk = data[have - offset :]
    with open(path, "ab") as fh:
        fh.write(chunk)
    if size + len(chunk) + shift != end:
        path.with_name(SHIFT).write_text(str(end - size - len(chunk)))
    return end


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, 2)
        return fh.read(1) == b"\n"


def log_source(runs_dir: Path, run_id: int, log_path: str) -> Path | None:
    """The file `GET /runs/{id}/logs` reads: the shipped log, else the run's log file, else none."""
    shipped = shipped_path(runs_dir, run_id)
    if shipped.exists():
        return shipped
    if log_path and Path(log_path).exists():
        return Path(log_path)
    return None


def read(path: Path | None, offset: int, limit: int) -> tuple[bytes, int]:
    """Up to `limit` bytes of `path` from byte `offset`, and the file's size (nothing: b"", 0)."""
    if path is None:
        return b"", 0
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(min(offset, size))
            return fh.read(limit), size
    except FileNotFoundError:
        return b"", 0


@dataclass(frozen=True)
class Page:
    """A piece of a run's log: its bytes, the log's size, and whether more may still come after
    the run ended (False while its agent may still be sending its last output)."""

    data: bytes
    size: int
    whole: bool


def read_run_log(runs_dir: Path, run_id: int, log_path: str, offset: int, limit: int) -> Page:
    """Up to `limit` bytes of run `run_id`'s log from byte `offset`."""
    source = log_source(runs_dir, run_id, log_path)
    data, size = read(source, offset, limit)
    whole = True
    if source is not None and source.name == SHIPPED:
        try:
            quiet = time.time() - source.stat().st_mtime > QUIET
        except FileNotFoundError:
            quiet = True
        whole = quiet or source.with_name(END).exists()
    return Page(data=data, size=size, whole=whole)


# -- retention ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Swept:
    """What one retention sweep deleted."""

    runs: int = 0
    files: int = 0
    metrics: int = 0


def _run_ids(runs_dir: Path) -> list[int]:
    try:
        return sorted(int(p.name) for p in runs_dir.iterdir() if p.name.isdigit())
    except FileNotFoundError:
        return []


def _chunks(ids: list[int], size: int = 500) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _log_files(runs_dir: Path, run_id: int, log_path: str) -> list[Path]:
    base = runs_dir / str(run_id)
    files = [base / SHIPPED, base / SHIFT, base / END]
    if log_path and Path(log_path).resolve().is_relative_to(base.resolve()):
        files.append(Path(log_path))  # only a log control keeps in the run's own directory
    if base.is_dir():
        files += sorted(base.rglob("*.attempt-*.log"))  # earlier attempts' logs (`control.attempts`)
    return files


def sweep(*, session: Session, runs_dir: Path, days: float, now: datetime | None = None) -> Swept:
    """Delete the log files and metric points of runs that ended more than `days` days ago."""
    cutoff = (now or m.utcnow()) - timedelta(days=days)
    old = select(m.Runtime.id).where(m.Runtime.state.in_(ENDED), m.Runtime.finished_at < cutoff)
    result = session.execute(
        delete(m.RunMetric)
        .where(m.RunMetric.runtime_id.in_(old))
        .execution_options(synchronize_session=False)
    )
    metrics = int(getattr(result, "rowcount", 0) or 0)
    runs = files = 0
    for chunk in _chunks(_run_ids(runs_dir)):
        rows = session.execute(
            select(m.Runtime.id, m.Runtime.log_path).where(
                m.Runtime.id.in_(chunk), m.Runtime.state.in_(ENDED), m.Runtime.finished_at < cutoff
            )
        )
        for run_id, log_path in rows:
            gone = 0
            for path in _log_files(runs_dir, run_id, log_path):
                try:
                    path.unlink()
                    gone += 1
                except FileNotFoundError:
                    pass
            files += gone
            runs += 1 if gone else 0
    return Swept(runs=runs, files=files, metrics=metrics)


class Retention:
    """Runs `sweep` at most once per `every` seconds (the reconcile loop calls `tick` each pass)."""

    def __init__(self, *, runs_dir: Path, days: float, every: float = SWEEP_EVERY) -> None:
        self.runs_dir = runs_dir
        self.days = days
        self.every = every
        self._next = 0.0

    async def tick(self, db: Callable[[Callable[[Session], Swept]], Awaitable[Swept]]) -> Swept | None:
        """Sweep if one is due; never raises (a failed sweep is tried again at the next one)."""
        if time.monotonic() < self._next:
            return None
        self._next = time.monotonic() + self.every
        try:
            swept = await db(lambda ses: sweep(session=ses, runs_dir=self.runs_dir, days=self.days))
        except Exception:
            logger.exception("the log retention sweep failed; it runs again in %.0f s", self.every)
            return None
        if swept.files or swept.metrics:
            logger.info(
                "retention (%g days): deleted %d log files of %d runs and %d metric points",
                self.days,
                swept.files,
                swept.runs,
                swept.metrics,
            )
        return swept
