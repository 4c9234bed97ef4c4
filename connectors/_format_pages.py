"""Page producers behind `connectors._formats.file_pages`: one local file as pages of exact size.

csv and JSON lines are split into whole records on raw bytes (numpy finds the newlines outside
double quotes), and each page's bytes are parsed on their own (pandas, or pyarrow for Arrow
pages), so every page knows the byte offset where it ends: that offset is the resume cursor.
Parquet pages come from record batches across row groups; pickle and JSON arrays load whole.
All blocking work runs in worker threads (`connectors._blocking_pages.BlockingPages`).
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from connectors._blocking_pages import END, BlockingPages
from connectors._paging import Advance, rows_advance
from connectors.errors import BatchDecodeError

Pages = Generator[Any, None, None]
"""A blocking page producer."""

CURSOR_KEY = "_atom_cursor"
"""Where a csv/jsonl page records its end: `DataFrame.attrs` key / Arrow schema metadata key."""

_BLOCK = 1 << 20
_MAX_BLOCK = 64 << 20


def _byte_cursor(cursor: Any) -> dict[str, Any]:
    if isinstance(cursor, dict):
        return {
            "rows": int(cursor.get("rows", 0)),
            "offset": cursor.get("offset"),
            "offset_rows": int(cursor.get("offset_rows", 0)),
        }
    return {"rows": int(cursor or 0), "offset": None, "offset_rows": 0}


def _rows(cursor: Any) -> int:
    return int(cursor.get("rows", 0)) if isinstance(cursor, dict) else int(cursor or 0)


def _page_mark(page: Any) -> tuple[int, int] | None:
    if isinstance(page, pd.DataFrame):
        mark = page.attrs.get(CURSOR_KEY)
        return (int(mark[0]), int(mark[1])) if mark else None
    meta = page.schema.metadata or {}
    raw = meta.get(CURSOR_KEY.encode())
    if not raw:
        return None
    offset, rows = json.loads(raw)
    return int(offset), int(rows)


def _mark(page: Any, offset: int, rows: int) -> Any:
    if isinstance(page, pd.DataFrame):
        page.attrs[CURSOR_KEY] = (offset, rows)
        return page
    meta = dict(page.schema.metadata or {})
    meta[CURSOR_KEY.encode()] = json.dumps([offset, rows]).encode()
    return page.replace_schema_metadata(meta)


def byte_advance(batch: Any, cursor: Any) -> dict[str, Any]:
    """Cursor strategy for csv/jsonl: rows handed on plus the last known record boundary."""
    cur = _byte_cursor(cursor)
    rows = cur["rows"] + len(batch)
    mark = _page_mark(batch)
    if mark is not None and cur["offset_rows"] <= mark[1] <= rows:  # a page end this batch reached
        return {"rows": rows, "offset": mark[0], "offset_rows": mark[1]}
    return {"rows": rows, "offset": cur["offset"], "offset_rows": cur["offset_rows"]}


def format_advance(fmt: str) -> Advance:
    """How the resume cursor moves past a page or batch of `fmt` (see `connectors._formats`)."""
    return byte_advance if fmt in ("csv", "jsonl") else rows_advance


# -- record splitting ---------------------------------------------------------------------------


def open_binary(path: Path, name: str | Path | None = None) -> BinaryIO:
    """`path` opened for binary reading, decompressed by its suffix (gz, bz2, xz, zip, zst, tar).

    Args:
        path: the local file.
        name: the name whose suffix tells the compression (an object key or URL); default `path`.
    """
    suffix = _suffix(name if name is not None else path)
    if suffix == ".gz":
        import gzip

        return gzip.open(path, "rb")  # type: ignore[return-value]
    if suffix == ".bz2":
        import bz2

        return bz2.open(path, "rb")  # type: ignore[return-value]
    if suffix == ".xz":
        import lzma

        return lzma.open(path, "rb")  # type: ignore[return-value]
    if suffix == ".zip":
        import zipfile

        archive = zipfile.ZipFile(path)
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) != 1:
            raise ValueError(f"a zip data file must hold exactly one file, it holds {len(members)}")
        return archive.open(members[0])  # type: ignore[return-value]
    if suffix == ".zst":
        try:
            import zstandard  # deferred, optional: only .zst files need it
        except ImportError as exc:
            raise ValueError("reading .zst files needs the zstandard package: pip install zstandard") from exc
        return zstandard.open(path, "rb")  # type: ignore[no-any-return,unused-ignore]
    if suffix == ".tar":
        import tarfile

        tar = tarfile.open(path)  # noqa: SIM115 - the member's file object keeps it open
        for member in tar:
            if member.isfile():
                return tar.extractfile(member)  # type: ignore[return-value]
        raise ValueError("the tar archive holds no file")
    return open(path, "rb", buffering=0)


def _suffix(name: str | Path) -> str:
    text = str(name)
    if "://" in text:
        from urllib.parse import urlsplit

        text = urlsplit(text).path
    return Path(text).suffix.lower()


class RecordSplitter:
    """Whole records from a binary stream: lines, where csv newlines inside quotes do not count."""

    def __init__(self, fh: BinaryIO, *, quoted: bool, offset: int = 0) -> None:
        self._fh = fh
        self._quoted = quoted
        self._buf = bytearray()
        self._start = 0  # first unconsumed byte of _buf
        self._ends: list[int] = []  # record ends (exclusive) in _buf, not yet consumed
        self._last_end = 0  # end of the last record found in _buf
        self._odd = False  # inside quotes at _scanned
        self._eof = False
        self.offset = offset  # stream offset of _buf[_start]
        self._avg = 0.0

    def _fill(self, want: int) -> None:
        size = int(min(_MAX_BLOCK, max(_BLOCK, want * (self._avg or 128) * 1.1)))
        if self._start > (1 << 20) and self._start * 2 > len(self._buf):
            del self._buf[: self._start]
            self._ends = [e - self._start for e in self._ends]
            self._last_end -= self._start
            self._start = 0
        chunk = self._fh.read(size)
        if not chunk:
            self._eof = True
            if self._last_end < len(self._buf):
                self._ends.append(len(self._buf))  # a last record without a newline
                self._last_end = len(self._buf)
            return
        base = len(self._buf)
        self._buf += chunk
        arr = np.frombuffer(chunk, dtype=np.uint8)
        newlines = np.flatnonzero(arr == 10)
        if self._quoted:
            quotes = np.flatnonzero(arr == 34)
            if len(quotes):
                before = np.searchsorted(quotes, newlines) + int(self._odd)
                newlines = newlines[before % 2 == 0]
                self._odd = bool((len(quotes) + int(self._odd)) % 2)
        if len(newlines):
            self._ends.extend((newlines + (base + 1)).tolist())
            self._last_end = self._ends[-1]

    def take(self, n: int) -> tuple[bytes, int]:
        """Up to `n` whole records (fewer only at the end of the stream) and how many."""
        while len(self._ends) < n and not self._eof:
            self._fill(n - len(self._ends))
        count = min(n, len(self._ends))
        if not count:
            return b"", 0
        end = self._ends[count - 1]
        data = bytes(self._buf[self._start : end])
        del self._ends[:count]
        self.offset += end - self._start
        self._avg = len(data) / count
        self._start = end
        return data, count

    def skip(self, n: int) -> None:
        """Drop `n` records."""
        while n > 0:
            _, got = self.take(min(n, 100_000))
            if not got:
                return
            n -= got


def _parse(fmt: str, data: bytes, header: bytes, arrow: bool) -> Any:
    if fmt == "csv":
        if arrow:
            import pyarrow.csv as pacsv  # deferred: only Arrow reads need it

            return pacsv.read_csv(io.BytesIO(header + data))
        return pd.read_csv(io.BytesIO(header + data))
    if arrow:
        import pyarrow.json as pajson  # deferred: only Arrow reads need it

        return pajson.read_json(io.BytesIO(data))
    return pd.read_json(io.BytesIO(data), lines=True)


def _blank(data: bytes) -> bool:
    return not data.strip()


def _record_pages(path: Path, fmt: str, page_rows: int, cursor: Any, arrow: bool, name: Any) -> Pages:
    cur = _byte_cursor(cursor)
    csv = fmt == "csv"
    with open_binary(path, name) as fh:
        header = b""
        if csv:
            header, _ = RecordSplitter(fh, quoted=True).take(1)
            if header and not header.endswith(b"\n"):
                header += b"\n"
        if cur["offset"] is None:
            fh.seek(0)
            splitter = RecordSplitter(fh, quoted=csv)
            if csv:
                splitter.take(1)
            splitter.skip(cur["rows"])
        else:
            fh.seek(int(cur["offset"]))
            splitter = RecordSplitter(fh, quoted=csv, offset=int(cur["offset"]))
            splitter.skip(cur["rows"] - cur["offset_rows"])
        rows = cur["rows"]
        first = True
        while True:
            parts: list[Any] = []
            need = page_rows
            while need > 0:
                data, count = splitter.take(need)
                if not count:
                    break
                if not data.strip():
                    continue
                part = _parse(fmt, data, header, arrow)
                if len(part):
                    parts.append(part)
                    need -= len(part)
            if not parts:
                if first and header.strip():  # a header and no rows: hand on the columns
                    yield _parse(fmt, b"", header, arrow)
                return
            first = False
            page = _concat(parts, arrow)
            rows += len(page)
            yield _mark(page, splitter.offset, rows)


def _concat(parts: list[Any], arrow: bool) -> Any:
    if len(parts) == 1:
        return parts[0]
    if arrow:
        import pyarrow as pa  # deferred: only Arrow reads need it

        return pa.concat_tables(parts, promote_options="default")
    return pd.concat(parts, ignore_index=True)


def load_frame(path: Path, fmt: str) -> pd.DataFrame:
    """Read a whole file into one DataFrame (blocking; errors untranslated)."""
    if fmt == "pickle":
        obj = pd.read_pickle(path)
        if isinstance(obj, pd.Series):
            obj = obj.to_frame()
        if not isinstance(obj, pd.DataFrame):
            raise BatchDecodeError(
                f"{path} holds a pickled {type(obj).__name__}, not a DataFrame: pickle a pandas DataFrame",
                path=str(path),
            )
        return obj
    if fmt == "json":
        try:
            return pd.read_json(path)
        except ValueError as exc:
            if "Trailing data" not in str(exc):
                raise
            return pd.read_json(path, lines=True)  # a .json file that holds JSON lines
    if fmt == "parquet":
        return pd.read_parquet(path)
    if fmt == "jsonl":
        return pd.read_json(path, lines=True) if path.stat().st_size else pd.DataFrame()
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


# -- parquet and whole-file formats ----------------------------------------------------------------


def _parquet_pages(path: Path, page_rows: int, cursor: Any, arrow: bool) -> Pages:
    import pyarrow as pa  # deferred: only parquet reads need it
    import pyarrow.parquet as pq

    skip = _rows(cursor)
    with pq.ParquetFile(path) as pf:
        meta = pf.metadata
        first, left = 0, skip
        while first < meta.num_row_groups and meta.row_group(first).num_rows <= left:
            left -= meta.row_group(first).num_rows
            first += 1
        groups = list(range(first, meta.num_row_groups))
        have: list[Any] = []
        count = 0
        empty = True
        for batch in pf.iter_batches(batch_size=page_rows, row_groups=groups):
            if left:
                cut = min(left, len(batch))
                batch, left = batch.slice(cut), left - cut
            if not len(batch):
                continue
            have.append(batch)
            count += len(batch)
            while count >= page_rows:
                table = pa.Table.from_batches(have)
                have = table.slice(page_rows).to_batches()
                count -= page_rows
                empty = False
                page = table.slice(0, page_rows)
                yield page if arrow else page.to_pandas()
        if have:
            table = pa.Table.from_batches(have)
            yield table if arrow else table.to_pandas()
        elif empty and not skip:  # no rows: hand on the columns (disposable reads)
            table = pf.schema_arrow.empty_table()
            yield table if arrow else table.to_pandas()


def _whole_pages(path: Path, fmt: str, page_rows: int, cursor: Any, arrow: bool) -> Pages:
    frame: Any = load_frame(path, fmt)
    if arrow:
        import pyarrow as pa  # deferred: only Arrow reads need it

        frame = pa.Table.from_pandas(frame, preserve_index=False)
    if not len(frame):
        yield frame  # no rows, but the columns are worth handing on (disposable reads)
        return
    for start in range(_rows(cursor), len(frame), page_rows):
        yield frame.slice(start, page_rows) if arrow else frame.iloc[start : start + page_rows]


def iter_file_pages(
    path: Path, fmt: str, page_rows: int, cursor: Any, arrow: bool, name: str | Path | None = None
) -> Pages:
    """Pages of a local file, blocking (see `connectors._formats.file_pages`); errors untranslated.

    `name` (an object key or URL) tells the compression by its suffix when `path` has none.
    """
    if fmt in ("csv", "jsonl"):
        return _record_pages(path, fmt, page_rows, cursor, arrow, name)
    if fmt == "parquet":
        return _parquet_pages(path, page_rows, cursor, arrow)
    return _whole_pages(path, fmt, page_rows, cursor, arrow)


async def raw_file_pages(
    path: Path, fmt: str, page_rows: int, cursor: Any, arrow: bool, name: str | Path | None = None
) -> AsyncIterator[Any]:
    """`iter_file_pages` with each step in a worker thread."""
    pages = BlockingPages(iter_file_pages(path, fmt, page_rows, cursor, arrow, name))
    try:
        while True:
            page = await pages.next()
            if page is END:
                return
            yield page
    finally:
        await pages.close()
