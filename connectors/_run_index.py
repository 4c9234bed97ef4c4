"""Run keys of a single file kept beside it, not in it: which rows each run appended.

A plain file sink (`data.csv`) appends; made idempotent per run without a `_atom_run` column in
the user's file, it keeps a hidden index beside the file (`.data.csv.atom-runs.json`): the file's
rows as consecutive segments `[run key or null, row count]`, in file order. A commit with a run
key that already has segments drops those rows (by position) and appends the new ones at the
end, so after a retried or re-run run each of its rows is in the file once.

The index records the size, mtime and inode of the file it describes; one that does not match
(the file was changed by something else, or a crash came between the index and the file) is
not trusted: the file's rows then count as one segment of rows no run owns. The index is
written before the new file is swapped in, and keeps the previous state too, so a crash between
the two leaves an index that still describes the file as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from connectors._atomic import publish, temp_beside

Segment = tuple[str | None, int]
SUFFIX = ".atom-runs.json"


def index_path(path: Path) -> Path:
    """The hidden index beside `path`."""
    return path.with_name(f".{path.name}{SUFFIX}")


def _stamp(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def count_rows(path: Path, fmt: str) -> int:
    """The rows of a file (parquet: from its footer; others: read page by page)."""
    if not path.exists() or not path.stat().st_size:
        return 0
    if fmt == "parquet":
        import pyarrow.parquet as pq  # deferred: only parquet files need it

        return int(pq.ParquetFile(path).metadata.num_rows)
    from connectors._format_pages import iter_file_pages

    return sum(len(page) for page in iter_file_pages(path, fmt, 65_536, None, False))


@dataclass
class RunIndex:
    """The segments of one file (see the module docstring)."""

    path: Path
    fmt: str
    segments: list[Segment] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, fmt: str) -> RunIndex:
        """The index of `path` as it is now; an untrusted or missing one counts the file's rows."""
        stamp = _stamp(path)
        if stamp is None or stamp[0] == 0:
            return cls(path, fmt)
        try:
            raw = json.loads(index_path(path).read_text())
        except (OSError, ValueError):
            raw = {}
        for state in (raw.get("current"), raw.get("previous")):
            if isinstance(state, dict) and state.get("stamp") == stamp:
                return cls(path, fmt, [(k, int(n)) for k, n in state.get("segments", [])])
        return cls(path, fmt, [(None, count_rows(path, fmt))])

    @property
    def rows(self) -> int:
        return sum(n for _, n in self.segments)

    def owns(self, run_key: str) -> bool:
        return any(k == run_key and n for k, n in self.segments)

    def drop_filter(self, run_key: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
        """A page filter for the file read in order: drops the rows `run_key` appended earlier."""
        spans, at = [], 0
        for key, n in self.segments:
            if key == run_key:
                spans.append((at, at + n))
            at += n
        seen = [0]

        def keep(page: pd.DataFrame) -> pd.DataFrame:
            start = seen[0]
            seen[0] += len(page)
            if not spans or not len(page):
                return page
            pos = pd.RangeIndex(start, start + len(page))
            mask = pd.Series(True, index=range(len(page)))
            for lo, hi in spans:
                mask &= ~((pos >= lo) & (pos < hi))
            return page if bool(mask.all()) else page[mask.to_numpy()]

        return keep

    def after(self, run_key: str, rows: int) -> list[Segment]:
        """The segments once `run_key`'s earlier rows are dropped and `rows` new ones appended."""
        out: list[Segment] = []
        for key, n in [*[(k, n) for k, n in self.segments if k != run_key], (run_key, rows)]:
            if not n:
                continue
            if out and out[-1][0] == key:
                out[-1] = (key, out[-1][1] + n)
            else:
                out.append((key, n))
        return out

    def save_for(self, new_file: Path, segments: list[Segment]) -> None:
        """Record `segments` as describing `new_file` (to be renamed over the target), keeping the
        current state as the previous one (a crash before the rename leaves it true)."""
        previous = {"stamp": _stamp(self.path), "segments": [list(s) for s in self.segments]}
        current = {"stamp": _stamp(new_file), "segments": [list(s) for s in segments]}
        body: dict[str, Any] = {"file": self.path.name, "current": current, "previous": previous}
        target = index_path(self.path)
        tmp = temp_beside(target)
        tmp.write_text(json.dumps(body))
        publish(tmp, target)
        self.segments = segments
