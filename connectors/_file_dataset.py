"""FILE directory datasets: a target ending in "/" is a directory of part files read in name order.

Reads page through every part (hidden `.x` and `_x` files are skipped, as Spark's `_SUCCESS`)
as one stream of exact-size pages. The resume cursor is `{"rows": R, "part": P, "part_rows": PR}`:
parts named before P are skipped unread, PR rows lie in them, and `R - PR` more rows are skipped.

Sinks: an append writes one new part, `part-<time>-<hex>.<ext>`, or `part-<run key>.<ext>`
when a run key is given, so a retried run replaces its own part by a single atomic rename.
Replace and upsert build a new sibling directory (unchanged parts hard-linked, the others
rewritten without the replaced rows) and swap it in with `renameat2(RENAME_EXCHANGE)` where
the kernel has it (one atomic step), or two renames elsewhere.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import os
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pandas as pd

from connectors._atomic import fsync_dir, publish, temp_beside
from connectors._blocking_pages import END, BlockingPages
from connectors._file_sink import FileSink, dir_lock
from connectors._format_pages import iter_file_pages
from connectors._formats import EXTENSIONS, FrameWriter, translate_errors
from connectors._paging import concat_frames, slice_frame
from connectors.base import WriteOptions
from connectors.errors import TargetNotFound
from connectors.file_root import FileRoot

PART_KEY = "_atom_part"
"""`DataFrame.attrs` / Arrow metadata key: (part name, rows before that part)."""


def list_parts(directory: Path, root: FileRoot | None = None) -> list[Path]:
    """The part files of a dataset directory, in name order (blocking).

    Raises:
        OutsideRoot: a part is a symlink leading outside `root` (the connection's root folder).
    """
    if not directory.is_dir():
        if directory.exists():
            raise TargetNotFound(f"{directory} is a file, not a dataset directory: drop the trailing /")
        raise TargetNotFound(
            f"dataset directory {directory} does not exist: check the data source's path", path=str(directory)
        )
    parts = sorted(p for p in directory.iterdir() if not p.name.startswith((".", "_")) and p.is_file())
    if root is not None:
        for part in parts:
            root.check(part)
    return parts


def _cursor(cursor: Any) -> dict[str, Any]:
    if isinstance(cursor, dict):
        return {
            "rows": int(cursor.get("rows", 0)),
            "part": cursor.get("part"),
            "part_rows": int(cursor.get("part_rows", 0)),
        }
    return {"rows": int(cursor or 0), "part": None, "part_rows": 0}


def _mark(page: Any, part: str, before: int) -> Any:
    if isinstance(page, pd.DataFrame):
        page.attrs[PART_KEY] = (part, before)
        return page
    import json

    meta = dict(page.schema.metadata or {})
    meta[PART_KEY.encode()] = json.dumps([part, before]).encode()
    return page.replace_schema_metadata(meta)


def _read_mark(page: Any) -> tuple[str, int] | None:
    if isinstance(page, pd.DataFrame):
        mark = page.attrs.get(PART_KEY)
        return (str(mark[0]), int(mark[1])) if mark else None
    raw = (page.schema.metadata or {}).get(PART_KEY.encode())
    if not raw:
        return None
    import json

    part, before = json.loads(raw)
    return str(part), int(before)


def dataset_advance(batch: Any, cursor: Any) -> dict[str, Any]:
    """Cursor strategy for datasets: rows handed on plus the start of the latest part reached."""
    cur = _cursor(cursor)
    rows = cur["rows"] + len(batch)
    mark = _read_mark(batch)
    if mark is not None and mark[1] <= rows:
        return {"rows": rows, "part": mark[0], "part_rows": mark[1]}
    return {"rows": rows, "part": cur["part"], "part_rows": cur["part_rows"]}


async def dataset_pages(
    directory: Path, fmt: str, page_rows: int, cursor: Any, arrow: bool, *, root: FileRoot | None = None
) -> AsyncIterator[Any]:
    """Exact-size pages over every part of `directory` (see the module docstring).

    Each page is marked with the part its last row comes from and the rows before that part.
    """
    cur = _cursor(cursor)
    with translate_errors(directory, "reading"):
        parts = await asyncio.to_thread(list_parts, directory, root)
    if cur["part"] is not None:
        parts = [p for p in parts if p.name >= cur["part"]]
    skip = cur["rows"] - cur["part_rows"]
    start = cur["part_rows"]  # rows before the current part
    buffer: list[Any] = []
    have = 0
    empty: Any = None
    last: tuple[str, int] | None = None  # the part the buffer's last row comes from
    for part in parts:
        pages = BlockingPages(iter_file_pages(part, fmt, page_rows, None, arrow))
        rows_in_part = 0
        try:
            while True:
                with translate_errors(part, "reading"):
                    page = await pages.next()
                if page is END:
                    break
                rows_in_part += len(page)
                if skip:
                    cut = min(skip, len(page))
                    page, skip = slice_frame(page, cut), skip - cut
                if not len(page):
                    empty = page if empty is None else empty
                    continue
                buffer.append(page)
                have += len(page)
                last = (part.name, start)
                while have >= page_rows:  # the page's last row lies in this part: the buffer held less before
                    merged = concat_frames(buffer)
                    rest = slice_frame(merged, page_rows)
                    buffer, have = ([rest] if len(rest) else []), len(rest)
                    yield _mark(slice_frame(merged, 0, page_rows), part.name, start)
        finally:
            await pages.close()
        start += rows_in_part
    if buffer and last is not None:
        yield _mark(concat_frames(buffer), *last)
    elif empty is not None and cur["rows"] == 0:
        yield empty  # no rows, but the columns are worth handing on (disposable reads)


def part_name(fmt: str, run_key: str | None) -> str:
    """A new part's file name: by run key (a retry replaces it), else by time (name order = commit order)."""
    ext = EXTENSIONS[fmt]
    if run_key:
        safe = re.sub(r"[^A-Za-z0-9._=-]", "_", run_key)[:80]
        if safe != run_key:
            safe += "-" + hashlib.sha256(run_key.encode()).hexdigest()[:10]
        return f"part-{safe}.{ext}"
    return f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.{ext}"


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> None:
    """Swap two paths atomically (Linux `renameat2`), or with two renames where that is missing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err not in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: fall back
            raise OSError(err, os.strerror(err), str(b))
    aside = b.with_name(f".{b.name}.{uuid.uuid4().hex[:8]}.old")
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


class DatasetSink(FileSink):
    """A streaming, atomic write to a directory dataset (see the module docstring)."""

    def __init__(
        self, directory: Path, target: str, options: WriteOptions, fmt: str, *, root: FileRoot | None = None
    ) -> None:
        # stage beside the directory, so a new dataset does not show up (empty) before the commit
        super().__init__(
            directory.with_name(directory.name + ".staging"), target, options, fmt, name=directory
        )
        self.directory = directory
        self.root = root

    def _check_columns(self, batch: pd.DataFrame) -> None:
        """Parts may differ in columns; nothing to check before staging."""

    def _commit_sync(self) -> None:
        if self._stage is None:
            if self.options.mode != "replace":
                return
            self._stage_path = temp_beside(self.path)
            self._stage = FrameWriter(self._stage_path, self.fmt, name=self.directory)
        staged = self._stage_path
        assert staged is not None
        self._stage.close()
        name = part_name(self.fmt, self.options.run_key)
        with dir_lock(self.directory.parent):
            if self.options.mode == "append":
                self.directory.mkdir(exist_ok=True)
                publish(staged, self.directory / name)  # a run key's part replaces that run's earlier one
            else:
                self._swap(staged, name)

    def _swap(self, staged: Path, name: str) -> None:
        directory = self.directory
        fresh = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:12]}.tmp")
        fresh.mkdir()
        try:
            if self.options.mode == "upsert" and directory.is_dir():
                for part in list_parts(directory, self.root):
                    if part.name != name:
                        self._filter_part(part, fresh / part.name)
            os.rename(staged, fresh / name)
            fsync_dir(fresh)
            if directory.is_dir():
                exchange(fresh, directory)
                shutil.rmtree(fresh, ignore_errors=True)
            else:
                os.rename(fresh, directory)
            fsync_dir(directory.parent)
        except BaseException:
            shutil.rmtree(fresh, ignore_errors=True)
            raise

    def _filter_part(self, part: Path, out: Path) -> None:
        """`part` without the rows this sink replaces; hard-linked when it keeps every row."""
        from connectors._file_sink import file_columns

        columns = file_columns(part, self.fmt)
        keep = self._plan.keep_old(columns)
        seen = 0

        def counting(page: pd.DataFrame) -> pd.DataFrame:
            nonlocal seen
            seen += len(page)
            return keep(page)

        writer = FrameWriter(out, self.fmt, columns=columns, name=part)
        try:
            writer.append_file(part, transform=counting)
            writer.close()
        except BaseException:
            writer.discard()
            raise
        if writer.rows == seen:
            os.unlink(out)
            try:
                os.link(part, out)
            except OSError:
                shutil.copy2(part, out)
        elif not writer.rows:
            os.unlink(out)
