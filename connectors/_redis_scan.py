"""REDIS read bookkeeping: which rows each SCAN batch gave, the resume cursor, dedup, exact pages.

The reader (`_redis_read`) hands every decoded SCAN batch to `ScanState.accept`, which drops
the rows a resumed read must skip and the keys SCAN already returned, logs where the batch came
from, and buffers its rows; `pages` cuts pages of exactly `paginate_read_num` rows.

Cursor: `{"node": "host:port", "scan": c, "skip": k, "rows": g}` means "re-run SCAN at c on that
node and drop its first k rows"; `rows` counts rows handed on so far. A finished read's cursor
has `"done": True`. SCAN from a cursor walks the same buckets in the same order whatever COUNT is,
so a skip larger than a (smaller-COUNT) batch carries on into the next one. Resuming is exact when
the keys of that stretch did not change meanwhile (a keyspace that grows or shrinks enough to be
rehashed reorders it).

Duplicates: SCAN may return a key twice when the keyspace shrinks during the read (it never
misses a key present throughout). With `dedup` on (the default) a read remembers every key it
handed on (about 90 bytes each) and drops repeats; turn it off for very large keyspaces.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from connectors._redis_decode import KEY_COLUMN
from connectors._redis_resp import Endpoint, RedisSettings
from connectors.errors import ConnectorConfigError

logger = logging.getLogger(__name__)


@dataclass
class ScanPlan:
    """What one pattern read needs.

    Attributes:
        settings: connection settings.
        nodes: the primaries, in read order.
        pattern: the SCAN MATCH pattern.
        target: the read's target as given (messages).
        count: SCAN COUNT and keys per value pipeline.
        page_rows: rows per page.
        arrow: pages as Arrow tables, else DataFrames.
        schema: column types from the sink's schema key (None: infer).
        dedup: drop keys SCAN returns twice.
        must_exist: raise TargetNotFound when nothing matches.
    """

    settings: RedisSettings
    nodes: list[Endpoint]
    pattern: bytes
    target: str
    count: int
    page_rows: int
    arrow: bool
    schema: dict[str, pa.DataType] | None
    dedup: bool = True
    must_exist: bool = True

    @property
    def name(self) -> str:
        return f"{self.settings.where} keys {self.pattern.decode('utf-8', 'replace')}"


@dataclass
class _Batch:
    """One SCAN batch as logged: where it came from and which rows it gave."""

    seq: int
    node: int
    scan: int
    start: int
    end: int
    skip: int
    raw: np.ndarray | None = None
    added: list[bytes] = field(default_factory=list)


class ScanState:
    """The log shared by a read's producer (worker thread) and its cursor function."""

    def __init__(self, plan: ScanPlan, start: Any) -> None:
        self.plan = plan
        self.labels = [n.label for n in plan.nodes]
        node, scan, skip, rows, done = self._parse(start)
        self.log: list[_Batch] = []
        self.filled: list[_Batch] = []
        self.starts: list[int] = []
        self.total = rows
        self.tail: tuple[int, int] | None = None if done else (node, scan)
        self.seen: set[bytes] | None = set() if plan.dedup else None
        self.widest: dict[str, str] = {}
        self.seq = 0
        self.buffer: list[pa.Table] = []
        self.buffered = 0

    def _parse(self, cursor: Any) -> tuple[int, int, int, int, bool]:
        if cursor is None:
            return 0, 0, 0, 0, False
        if not isinstance(cursor, dict) or "rows" not in cursor:
            raise ConnectorConfigError(
                f"resume_from {cursor!r} is not a Redis read cursor: pass the `cursor` of a Redis reader"
            )
        rows = int(cursor["rows"])
        if cursor.get("done"):
            return 0, 0, 0, rows, True
        label = str(cursor.get("node", ""))
        if label not in self.labels:
            raise ConnectorConfigError(
                f"resume_from names node {label} which is not a primary of {self.plan.settings.where} "
                "now: start the read over"
            )
        return self.labels.index(label), int(cursor["scan"]), int(cursor.get("skip", 0)), rows, False

    def cursor_at(self, rows: int) -> dict[str, Any]:
        """The resume point just before global row `rows`."""
        i = bisect_right(self.starts, rows) - 1
        if i >= 0 and rows < self.filled[i].end:
            b = self.filled[i]
            raw = b.skip + rows - b.start if b.raw is None else int(b.raw[rows - b.start])
            return {"node": self.labels[b.node], "scan": b.scan, "skip": raw, "rows": rows}
        if self.tail is None:
            return {"done": True, "rows": rows}
        return {"node": self.labels[self.tail[0]], "scan": self.tail[1], "skip": 0, "rows": rows}

    def advance(self, frame: Any, cursor: Any) -> dict[str, Any]:
        rows = int(cursor["rows"]) if isinstance(cursor, dict) else 0
        return self.cursor_at(rows + len(frame))

    def reopen(self, cursor: Any) -> tuple[int, int, int] | None:
        """Forget what comes after `cursor` (it is fetched again); returns (node, scan, skip)."""
        node, scan, skip, rows, done = self._parse(cursor)
        cut = self.seq
        for b in reversed(self.log):
            if (b.node, b.scan) == (node, scan) and b.start <= rows:
                cut = b.seq
                break
        for b in self.log:
            if b.seq >= cut and self.seen is not None:
                self.seen.difference_update(b.added)
        self.log = [b for b in self.log if b.seq < cut]
        kept: list[_Batch] = []
        for b in self.filled:
            if b.seq >= cut and b.start < rows:
                b = _Batch(b.seq, b.node, b.scan, b.start, rows, b.skip, b.raw)
            if b.seq < cut or b.start < rows:
                kept.append(b)
        self.filled = kept
        self.starts = [b.start for b in kept]
        self.total = rows
        self.tail = None if done else (node, scan)
        self.buffer, self.buffered = [], 0
        return None if done else (node, scan, skip)

    def accept(
        self,
        node: int,
        scan: int,
        after: int,
        skip: int,
        keys: list[bytes],
        table: pa.Table,
        row_key: np.ndarray,
    ) -> int:
        """Apply skip and dedup to a decoded batch, log it and buffer its rows (worker thread).

        Returns how much of `skip` is left for the next batch (when this one had fewer rows).
        """
        fetched = len(table)
        keep = np.ones(fetched, bool)
        added: list[bytes] = []
        if self.seen is not None and len(table):
            n = len(keys)
            if (
                len(row_key) == n
                and (n == 0 or (row_key[0] == 0 and row_key[-1] == n - 1))
                and (n < 2 or bool((np.diff(row_key) == 1).all()))
            ):
                batch_keys, inverse = keys, np.arange(n)  # one row per key, in order: the usual case
            else:
                uniq, inverse = np.unique(row_key, return_inverse=True)
                batch_keys = [keys[i] for i in uniq.tolist()]
            before = len(self.seen)
            self.seen.update(batch_keys)
            if len(self.seen) - before == len(batch_keys):
                added = batch_keys
            else:  # SCAN returned keys again (the keyspace shrank): find which, exactly
                earlier: set[bytes] = set()
                for b in self.log:
                    earlier.update(b.added)
                fresh = np.array([k not in earlier for k in batch_keys], bool)
                added = [k for k, f in zip(batch_keys, fresh, strict=True) if f]
                keep &= fresh[inverse]
                logger.debug(
                    "%s: dropped %d keys SCAN returned twice", self.plan.name, len(batch_keys) - len(added)
                )
        if skip:
            keep[:skip] = False
        kept = int(keep.sum())
        raw = None
        if kept != len(table) - min(skip, len(table)):
            raw = np.flatnonzero(keep)
        elif kept != len(table):
            table = table.slice(skip)
        if raw is not None:
            table = table.filter(pa.array(keep))
        self.seq += 1
        batch = _Batch(self.seq, node, scan, self.total, self.total + kept, skip, raw, added)
        self.log.append(batch)
        if kept:
            self.filled.append(batch)
            self.starts.append(batch.start)
            self.buffer.append(table)
            self.buffered += kept
        self.total += kept
        if after:
            self.tail = (node, after)
        elif node + 1 < len(self.plan.nodes):
            self.tail = (node + 1, 0)
        else:
            self.tail = None
        return max(0, skip - fetched)

    def pages(self, final: bool) -> list[Any]:
        """Cut every full page from the buffer (and the rest when `final`)."""
        out = []
        size = self.plan.page_rows
        while self.buffered >= size or (final and self.buffered):
            take = min(size, self.buffered)
            parts: list[pa.Table] = []
            need = take
            while need:
                head = self.buffer[0]
                if len(head) <= need:
                    parts.append(self.buffer.pop(0))
                    need -= len(head)
                else:
                    parts.append(head.slice(0, need))
                    self.buffer[0] = head.slice(need)
                    need = 0
            self.buffered -= take
            page = concat(parts)
            out.append(page if self.plan.arrow else page.to_pandas())
        return out


def concat(parts: list[pa.Table]) -> pa.Table:
    """Tables of one read with possibly different columns or widths, as one (text where types clash)."""
    if len(parts) == 1:
        return parts[0]
    try:
        return pa.concat_tables(parts, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        text = []
        for part in parts:
            text.append(
                pa.table(
                    {
                        n: c if pa.types.is_string(c.type) or n == KEY_COLUMN else c.cast(pa.string())
                        for n, c in zip(part.column_names, part.columns, strict=True)
                    }
                )
            )
        return pa.concat_tables(text, promote_options="permissive")
