"""Streaming frame writers for file sinks: one file of a format, written batch by batch.

Used by the FILE sinks (`connectors._file_sink`) and, through `connectors._formats`, by the
object stores, which write a local file and upload it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import pandas as pd

from connectors.errors import RequestRejected

if TYPE_CHECKING:
    import pyarrow as pa


def align_columns(df: pd.DataFrame, columns: list[str], name: str | Path) -> pd.DataFrame:
    """`df` with its columns in `columns`' order.

    Raises:
        RequestRejected: the column sets differ (the message names both).
    """
    have = [str(c) for c in df.columns]
    if have == columns:
        return df
    if set(have) != set(columns) or len(have) != len(columns):
        raise RequestRejected(
            f"cannot append to {name}: its columns are {columns}, the rows have {have}; "
            "write with mode='replace' or match the columns",
            path=str(name),
        )
    return df[columns]


def csv_columns(path: Path) -> list[str]:
    """The header of a csv file ([] when it is empty)."""
    try:
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except pd.errors.EmptyDataError:
        return []


def jsonl_text(df: pd.DataFrame) -> str:
    if not len(df):
        return ""
    text = df.to_json(orient="records", lines=True, date_format="iso")
    return text if text.endswith("\n") else text + "\n"


Transform = Callable[[pd.DataFrame], pd.DataFrame]
"""A page filter/conformer applied while rows are copied from one file to another."""


class FrameWriter:
    """Streams DataFrames into one file (blocking; call from a worker thread).

    csv, jsonl and parquet are written as batches arrive (parquet through a `ParquetWriter`,
    one row group per batch), so memory holds one batch; pickle and json are whole-document
    formats and keep the batches until `close()`.

    Attributes:
        columns: the column order of the file (set by `columns=`, the first batch or file appended).
        rows: rows written through `write()`.
    """

    def __init__(
        self,
        path: Path,
        fmt: str,
        *,
        columns: list[str] | None = None,
        schema: pa.Schema | None = None,
        name: str | Path | None = None,
    ) -> None:
        """Prepare to write `path` (created or truncated on the first write).

        Args:
            path: the file written (normally a temp file the caller renames).
            fmt: the format.
            columns: the required column order; None: the first batch's (or first file's).
            schema: parquet only: the schema every batch is cast to.
            name: how messages name the target (default: `path`).
        """
        self.path = path
        self.fmt = fmt
        self.columns = columns
        self.rows = 0
        self.name = name or path
        self._schema = schema
        self._started = False  # bytes (csv: the header) are in the file
        self._fh: Any = None
        self._writer: Any = None
        self._frames: list[pd.DataFrame] = []

    def _text(self) -> Any:
        if self._fh is None:
            mode = "a" if self._started else "w"
            self._fh = open(self.path, mode, newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        return self._fh

    def _parquet(self, schema: pa.Schema) -> Any:
        if self._writer is None:
            import pyarrow.parquet as pq  # deferred: only parquet writes need it

            self._schema = self._schema or schema
            self._writer = pq.ParquetWriter(self.path, self._schema)
            if self.columns is None:
                self.columns = list(self._schema.names)
        return self._writer

    def write(self, df: pd.DataFrame) -> None:
        """Append one batch (columns aligned to the file's)."""
        if self.columns is None:
            self.columns = [str(c) for c in df.columns]
        df = align_columns(df, self.columns, self.name)
        if self.fmt == "csv":
            df.to_csv(self._text(), header=not self._started, index=False, lineterminator="\n")
        elif self.fmt == "jsonl":
            self._text().write(jsonl_text(df))
        elif self.fmt == "parquet":
            import pyarrow as pa  # deferred: only parquet writes need it

            table = pa.Table.from_pandas(df, schema=self._schema, preserve_index=False)
            self._parquet(table.schema).write_table(table)
        else:
            self._frames.append(df)
        self._started = True
        self.rows += len(df)

    def append_file(
        self, src: Path, *, transform: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    ) -> None:
        """Append the rows of `src` (a file of the same format).

        Without `transform`, csv (same header), jsonl and parquet are copied without parsing;
        otherwise `src` is read page by page and each page goes through `transform` (a row
        filter that also conforms the columns).
        """
        if not src.exists() or not src.stat().st_size:
            return
        if transform is None and self._append_raw(src):
            return
        from connectors._format_pages import iter_file_pages

        for page in iter_file_pages(src, self.fmt, 65_536, None, False):
            if self.columns is None:
                self.columns = [str(c) for c in page.columns]
            page = transform(page) if transform is not None else page
            if len(page) or not self._started:
                self.write(page)

    def _append_raw(self, src: Path) -> bool:
        if self.fmt == "parquet":
            import pyarrow.parquet as pq  # deferred: only parquet writes need it

            with pq.ParquetFile(src) as pf:
                if self.columns is not None and sorted(pf.schema_arrow.names) != sorted(self.columns):
                    return False
                writer = self._parquet(pf.schema_arrow)
                for group in range(pf.metadata.num_row_groups):
                    table = pf.read_row_group(group).select(self.columns)
                    writer.write_table(table if table.schema == self._schema else table.cast(self._schema))
            self._started = True
            return True
        if self.fmt not in ("csv", "jsonl"):
            return False
        skip = 0
        if self.fmt == "csv":
            columns = csv_columns(src)
            if self.columns is None:
                self.columns = columns
            if columns != self.columns:
                return False
            if self._started:
                from connectors._format_pages import RecordSplitter

                with open(src, "rb") as fh:
                    skip = len(RecordSplitter(fh, quoted=True).take(1)[0])
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        with open(src, "rb") as fin, open(self.path, "ab" if self._started else "wb") as fout:
            fin.seek(skip)
            shutil.copyfileobj(fin, fout, 8 << 20)
            if fout.tell() and _last_byte(fin) != b"\n":
                fout.write(b"\n")
        self._started = True
        return True

    def close(self) -> None:
        """Finish the file (parquet footer; pickle/json body)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        elif self.fmt == "parquet":
            pd.DataFrame(columns=self.columns or []).to_parquet(self.path, index=False)
        elif self.fmt in ("pickle", "json"):
            frames = self._frames
            self._frames = []
            df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=self.columns or [])
            if self.fmt == "pickle":
                df.to_pickle(self.path)
            else:
                df.to_json(self.path, orient="records", date_format="iso")
        elif not self._started:
            with open(self.path, "w", encoding="utf-8") as fh:  # csv: the header only
                if self.fmt == "csv" and self.columns:
                    pd.DataFrame(columns=self.columns).to_csv(fh, index=False, lineterminator="\n")

    def discard(self) -> None:
        """Close without finishing (the caller deletes the file)."""
        with contextlib.suppress(Exception):
            if self._fh is not None:
                self._fh.close()
            if self._writer is not None:
                self._writer.close()
        self._fh = self._writer = None
        self._frames = []


def _last_byte(fh: BinaryIO) -> bytes:
    fh.seek(-1, os.SEEK_END)
    return fh.read(1)
