"""FILE sinks: batches stream into a staging file beside the target, swapped in atomically at commit.

Every write lands in a hidden temp file in the target's directory (`.<name>.<hex>.tmp`), so the
final rename is atomic and an aborted or crashed sink leaves the old file untouched. At commit,
under an exclusive `flock` on the directory (so two sinks committing to one directory take
turns), the staged rows become the new file:

- replace, or a target without rows: the staging file itself is renamed over the target;
- append: the old file's bytes (csv with the same header, jsonl) or row groups (parquet) are
  copied unparsed, then the staged rows;
- upsert and run-keyed writes: the old file is streamed page by page without the rows this sink
  replaces (same key / same `_atom_run`), then the staged rows are added.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from connectors._atomic import publish, temp_beside, unlink_quietly
from connectors._formats import translate_errors
from connectors._frame_writer import FrameWriter, Transform, align_columns, csv_columns
from connectors._run_index import RunIndex
from connectors.base import RUN_COLUMN, Sink, WriteOptions
from connectors.errors import ConnectorConfigError, RequestRejected

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def dir_lock(directory: Path) -> Iterator[None]:
    """An exclusive `flock` on a directory: commits into one directory take turns (all processes)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def has_rows(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def file_columns(path: Path, fmt: str) -> list[str]:
    """The columns of an existing file (blocking)."""
    if fmt == "csv":
        return csv_columns(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq  # deferred: only parquet files need it

        return list(pq.read_schema(path).names)
    from connectors._format_pages import iter_file_pages

    pages = iter_file_pages(path, fmt, 1, None, False)
    try:
        first = next(pages, None)
    finally:
        pages.close()
    return [] if first is None else [str(c) for c in first.columns]


def _parquet_schema(path: Path, columns: list[str]) -> pa.Schema:
    import pyarrow as pa  # deferred: only parquet files need it
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    for name in columns:
        if name not in schema.names:
            schema = schema.append(pa.field(name, pa.string()))
    return schema


class RowPlan:
    """Which old rows a commit drops and how pages are brought to the final columns."""

    def __init__(self, options: WriteOptions, name: str | Path) -> None:
        self.options = options
        self.name = name
        self.keys: set[Any] = set()

    @property
    def filters(self) -> bool:
        return self.options.mode == "upsert" or bool(self.options.run_key and not self.options.run_index)

    def remember(self, batch: pd.DataFrame) -> None:
        """Note the keys of staged rows (upsert)."""
        if self.options.mode != "upsert" or not len(batch):
            return
        cols = list(self.options.key)
        if len(cols) == 1:
            self.keys.update(batch[cols[0]].tolist())
        else:
            self.keys.update(batch[cols].itertuples(index=False, name=None))

    def keep_old(self, columns: list[str]) -> Transform:
        """Drop the old rows this sink replaces; conform the rest to `columns`."""
        run_key, keys, key_cols = self.options.run_key, self.keys, list(self.options.key)
        upsert = self.options.mode == "upsert"
        conform = self.conform(columns)

        def transform(page: pd.DataFrame) -> pd.DataFrame:
            keep = pd.Series(True, index=page.index)
            if run_key and RUN_COLUMN in page.columns:
                keep &= page[RUN_COLUMN].astype("string").fillna("") != run_key
            if upsert and keys:
                if len(key_cols) == 1:
                    keep &= ~page[key_cols[0]].isin(list(keys))
                else:
                    index = pd.MultiIndex.from_frame(page[key_cols])
                    keep &= ~index.isin(list(keys))
            return conform(page[keep] if not bool(keep.all()) else page)

        return transform

    def conform(self, columns: list[str]) -> Transform:
        """Bring a page to `columns` (a missing `_atom_run` is added empty)."""
        name = self.name

        def transform(page: pd.DataFrame) -> pd.DataFrame:
            if RUN_COLUMN in columns and RUN_COLUMN not in page.columns:
                page = page.assign(**{RUN_COLUMN: None})
            return align_columns(page, columns, name)

        return transform


class FileSink(Sink):
    """A streaming, atomic write to one local file (see the module docstring)."""

    def __init__(
        self, path: Path, target: str, options: WriteOptions, fmt: str, *, name: Path | None = None
    ) -> None:
        super().__init__(target, options)
        self.path = path
        self.name = name or path
        self.fmt = fmt
        self._plan = RowPlan(options, self.name)
        self._stage: FrameWriter | None = None
        self._stage_path: Path | None = None

    # -- writes ----------------------------------------------------------------------------------

    def _prepare(self, batch: pd.DataFrame) -> pd.DataFrame:
        if self.options.run_key and not self.options.run_index:
            batch = batch.assign(**{RUN_COLUMN: self.options.run_key})
        missing = [k for k in self.options.key if k not in batch.columns]
        if self.options.mode == "upsert" and missing:
            raise ConnectorConfigError(
                f"upsert into {self.name}: key column(s) {missing} are not in the rows: "
                f"pass key= with columns of the data (have {list(map(str, batch.columns))})"
            )
        return batch

    def _write_sync(self, batch: pd.DataFrame) -> None:
        if self._stage is None:
            self._check_columns(batch)
            self._stage_path = temp_beside(self.path)
            self._stage = FrameWriter(self._stage_path, self.fmt, name=self.name)
        self._plan.remember(batch)
        self._stage.write(batch)

    def _check_columns(self, batch: pd.DataFrame) -> None:
        """Refuse rows whose columns cannot join the existing file, before anything is staged."""
        if self.options.mode == "replace" or not has_rows(self.path):
            return
        old = file_columns(self.path, self.fmt)
        have = [str(c) for c in batch.columns]
        if set(old) - {RUN_COLUMN} != set(have) - {RUN_COLUMN}:
            raise RequestRejected(
                f"cannot {self.options.mode} into {self.path}: its columns are {old}, the rows have "
                f"{have}; write with mode='replace' or match the columns",
                path=str(self.path),
            )

    async def write(self, batch: pd.DataFrame) -> None:
        """Stage one batch (written to the staging file at once; visible only after `commit`)."""
        batch = self._prepare(batch)
        with translate_errors(self.name, "writing"):
            await asyncio.to_thread(self._write_sync, batch)
        self.rows += len(batch)

    # -- commit / abort --------------------------------------------------------------------------

    def _commit_sync(self) -> None:
        if self._stage is None:
            if self.options.mode != "replace":
                return  # nothing to add
            self._stage_path = temp_beside(self.path)
            self._stage = FrameWriter(self._stage_path, self.fmt, name=self.path)
        stage, staged = self._stage, self._stage_path
        assert staged is not None
        stage.close()
        with dir_lock(self.path.parent):
            if self.options.run_index and self.options.run_key and self.options.mode == "append":
                self._commit_indexed(self.options.run_key, staged, stage.columns or [])
                return
            if self.options.mode == "replace" or not has_rows(self.path):
                publish(staged, self.path)
                return
            out = temp_beside(self.path)
            try:
                self._merge(out, staged, stage.columns or [])
                publish(out, self.path)
            except BaseException:
                unlink_quietly(out)
                raise
            unlink_quietly(staged)

    def _commit_indexed(self, run_key: str, staged: Path, staged_columns: list[str]) -> None:
        """An append keyed by run in the file's hidden index (`connectors._run_index`): the rows
        an earlier commit with the same run key appended are dropped, the staged rows added."""
        index = RunIndex.load(self.path, self.fmt)
        if not index.segments:  # no rows yet: the staged file becomes the file
            index.save_for(staged, index.after(run_key, self.rows))
            publish(staged, self.path)
            return
        out = temp_beside(self.path)
        try:
            drop = index.drop_filter(run_key) if index.owns(run_key) else None
            self._merge(out, staged, staged_columns, drop=drop)
            index.save_for(out, index.after(run_key, self.rows))
            publish(out, self.path)
        except BaseException:
            unlink_quietly(out)
            raise
        unlink_quietly(staged)

    def _merge(
        self, out: Path, staged: Path, staged_columns: list[str], *, drop: Transform | None = None
    ) -> None:
        old_columns = file_columns(self.path, self.fmt)
        columns = old_columns + [c for c in staged_columns if c == RUN_COLUMN and c not in old_columns]
        schema = _parquet_schema(self.path, columns) if self.fmt == "parquet" else None
        writer = FrameWriter(out, self.fmt, columns=columns, schema=schema, name=self.path)
        try:
            keep = self._plan.keep_old(columns) if self._plan.filters or columns != old_columns else None
            if drop is not None:  # rows dropped by position: every page, in file order
                rest = keep

                def keep(page: pd.DataFrame) -> pd.DataFrame:
                    kept = drop(page)
                    return rest(kept) if rest is not None else kept

            writer.append_file(self.path, transform=keep)
            same = sorted(staged_columns) == sorted(columns)
            writer.append_file(staged, transform=None if same else self._plan.conform(columns))
            writer.close()
        except BaseException:
            writer.discard()
            raise

    async def commit(self) -> int:
        """Swap the staged rows in (see the module docstring); returns the rows written."""
        self._finished = True
        try:
            with translate_errors(self.name, "writing"):
                await asyncio.to_thread(self._commit_sync)
        except BaseException:
            await self.abort()
            raise
        logger.debug("committed %d rows to %s (%s, %s)", self.rows, self.name, self.fmt, self.options.mode)
        return self.rows

    async def abort(self) -> None:
        """Drop the staging file; the target stays as it was."""
        self._finished = True
        stage, self._stage = self._stage, None
        if stage is not None:
            stage.discard()
        await asyncio.to_thread(unlink_quietly, self._stage_path)
