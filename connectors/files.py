"""FILE connector: local files as DataFrames (csv, parquet, pickle, json/jsonl) and as objects.

A FILE connection's `addr` (or `source_conf["root"]`) is an optional base directory; a target is
a path relative to it, an absolute path, or a `file://` URI. The format comes from
`ReadOptions.data_format` or the file's extension. CSV and JSON lines stream in pages, parquet
by record batches across row groups; pickle and JSON arrays load whole and are then sliced.
Every write is atomic (temp file in the same directory, fsync, `os.replace`), so a reader never
sees half a file and a failed write leaves the old file as it was. Blocking I/O runs in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlparse

import pandas as pd

from connectors._paging import DEFAULT_PAGE_ROWS, PagedReader, rows_advance
from connectors.base import ConnectionConfig, Connector, ReadOptions, WriteMode
from connectors.errors import (
    BatchDecodeError,
    ConnectorConfigError,
    ConnectorError,
    PermissionDenied,
    RequestRejected,
    SourceUnavailable,
    TargetNotFound,
)

logger = logging.getLogger(__name__)

FORMATS: dict[str, str] = {
    "csv": "csv",
    "labelscsv": "csv",  # the seed's name for a CSV with a label column
    "json": "json",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "parquet": "parquet",
    "pq": "parquet",
    "pickle": "pickle",
    "pkl": "pickle",
}
"""Accepted `data_format` values and extensions, mapped to the format that handles them."""

_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zip", ".zst", ".tar"}


def detect_format(path: Path, data_format: str = "") -> str:
    """The file format to use: `data_format` when given, else the extension.

    The original runtime's `labelsCSV` described the content (a labelled table), not the
    encoding: its example pairs it with `.pkl` files. For it, a known extension wins.

    Raises:
        ConnectorConfigError: neither names a known format.
    """
    if data_format.lower() == "labelscsv":
        ext_fmt = FORMATS.get(path.suffix.lower().lstrip("."))
        data_format = ext_fmt or "csv"
    if data_format:
        fmt = FORMATS.get(data_format.lower())
        if fmt is None:
            raise ConnectorConfigError(
                f"unknown dataFormat {data_format!r} for {path}: "
                f"valid values are {', '.join(sorted(FORMATS))}"
            )
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes.pop()
    ext = suffixes[-1].lstrip(".") if suffixes else ""
    fmt = FORMATS.get(ext)
    if fmt is None:
        raise ConnectorConfigError(
            f"cannot tell the format of {path} from its extension: set the data source's dataFormat "
            f"to one of {', '.join(sorted(FORMATS))}"
        )
    return fmt


@contextlib.contextmanager
def _translated(path: Path, doing: str) -> Iterator[None]:
    """Turn OS, pandas and pyarrow errors about `path` into connector errors."""
    import pyarrow as pa  # deferred: only file I/O needs it

    try:
        yield
    except ConnectorError:
        raise
    except FileNotFoundError as exc:
        raise TargetNotFound(
            f"file {path} does not exist: check the data source's path", path=str(path)
        ) from exc
    except PermissionError as exc:
        raise PermissionDenied(
            f"no permission {doing} {path}: check the file's owner and mode", path=str(path)
        ) from exc
    except IsADirectoryError as exc:
        raise ConnectorConfigError(f"{path} is a directory: name a file", path=str(path)) from exc
    except (
        pd.errors.ParserError,
        UnicodeError,
        pickle.UnpicklingError,
        pa.ArrowException,
        ValueError,
        TypeError,
        EOFError,
    ) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if doing == "writing":
            raise RequestRejected(f"cannot write these rows to {path}: {detail}", path=str(path)) from exc
        raise BatchDecodeError(f"cannot decode {path}: {detail}", path=str(path)) from exc
    except OSError as exc:
        raise SourceUnavailable(f"I/O error {doing} {path}: {exc.strerror or exc}", path=str(path)) from exc


def _file_uri_path(uri: str) -> str:
    """The local path of a `file://` URI (`file:///abs`, `file://localhost/abs`, `file://rel/x`)."""
    parsed = urlparse(uri)
    host = "" if parsed.netloc in ("", "localhost") else parsed.netloc
    return unquote(host + parsed.path)


class FileConnector(Connector):
    """Local files through one optional base directory.

    Example:
        >>> conn = FileConnector(ConnectionConfig("FILE", addr="/data"))
        >>> async for df in conn.read("train.csv", ReadOptions(paginate_read_num=10_000)): ...
    """

    connect_type: ClassVar[str] = "FILE"

    def __init__(self, config: ConnectionConfig) -> None:
        """Open a FILE connection; no I/O happens until the first call.

        Args:
            config: `addr` or `source_conf["root"]` is the base directory ("" = none: relative
                paths are taken from the working directory).
        """
        super().__init__(config)
        root = config.addr or str(config.source_conf.get("root", "") or "")
        if root.startswith("file://"):
            root = _file_uri_path(root)
        self.root: Path | None = Path(root).expanduser() if root else None

    # -- paths -----------------------------------------------------------------------------

    def resolve(self, target: str) -> Path:
        """The file a target names: `file://` URIs and absolute paths as they are, else under the base."""
        if not target:
            raise ConnectorConfigError("empty FILE target: give a file path")
        raw = _file_uri_path(target) if target.startswith("file://") else target
        path = Path(raw).expanduser()
        if path.is_absolute() or self.root is None:
            return path
        return self.root / path

    def _object_path(self, path: str) -> Path:
        """An object path, refused if it escapes the base directory."""
        resolved = self.resolve(path)
        if self.root is not None:
            base = self.root.resolve()
            if not resolved.resolve().is_relative_to(base):
                raise PermissionDenied(
                    f"object path {path!r} is outside the connection's base directory {base}: "
                    "use a path inside it",
                    path=path,
                )
        return resolved

    # -- read ------------------------------------------------------------------------------

    def read(self, target: str, options: ReadOptions | None = None) -> PagedReader:
        """Stream a file as DataFrames.

        Args:
            target: a path relative to the base directory, an absolute path or a `file://` URI.
            options: read knobs; `paginate_read_num` is the page size, `resume_from` a row offset.

        Returns:
            A `PagedReader`; its `cursor` is the number of rows handed on (plus `resume_from`).

        Raises:
            TargetNotFound: the file does not exist (raised on the first batch).
            BatchDecodeError: the file is not valid in its format.
            ConnectorConfigError: the format cannot be told.
        """
        options = options or ReadOptions()
        path = self.resolve(target)
        fmt = detect_format(path, options.data_format)
        page_rows = options.paginate_read_num or DEFAULT_PAGE_ROWS
        skip = int(options.resume_from or 0)
        producer = _PAGE_PRODUCERS[fmt]
        return PagedReader(producer(path, page_rows, skip), options, advance=rows_advance, name=str(path))

    # -- write -----------------------------------------------------------------------------

    async def write(self, df: pd.DataFrame, target: str, *, mode: WriteMode = "append") -> int:
        """Write `df` to a file, atomically; the format comes from the extension.

        Args:
            df: the rows.
            target: the file (parent directories are created).
            mode: "append" adds rows to an existing file (same columns), "replace" overwrites it.

        Returns:
            The number of rows written.

        Raises:
            RequestRejected: appending columns that differ from the file's.
        """
        if mode not in ("append", "replace"):
            raise ConnectorConfigError(f"unknown write mode {mode!r}: valid values are append, replace")
        path = self.resolve(target)
        fmt = detect_format(path)
        with _translated(path, "writing"):
            await asyncio.to_thread(_write_frame, path, fmt, df, mode)
        logger.debug("wrote %d rows to %s (%s, %s)", len(df), path, fmt, mode)
        return len(df)

    # -- objects ---------------------------------------------------------------------------

    async def get_object(self, path: str) -> bytes:
        """Read one file under the base directory whole.

        Raises:
            TargetNotFound: the file does not exist.
        """
        file = self._object_path(path)
        with _translated(file, "reading"):
            return await asyncio.to_thread(file.read_bytes)

    async def put_object(self, path: str, data: bytes) -> str:
        """Store `data` at `path` under the base directory, atomically; returns its `file://` URI."""
        file = self._object_path(path)

        def put() -> None:
            with _atomic_file(file) as tmp, open(tmp, "wb") as fh:
                fh.write(data)

        with _translated(file, "writing"):
            await asyncio.to_thread(put)
        return file.absolute().as_uri()

    async def ping(self) -> None:
        """Check the base directory exists."""
        if self.root is None:
            return
        root = self.root
        is_dir = await asyncio.to_thread(root.is_dir)
        if not is_dir:
            exists = await asyncio.to_thread(root.exists)
            if exists:
                raise ConnectorConfigError(f"FILE base {root} is not a directory: point addr at a directory")
            raise TargetNotFound(f"FILE base directory {root} does not exist: create it or fix addr")


# -- page producers ---------------------------------------------------------------------------

PageProducer = Callable[[Path, int, int], AsyncIterator[pd.DataFrame]]


async def _csv_pages(path: Path, page_rows: int, skip: int) -> AsyncIterator[pd.DataFrame]:
    def open_reader() -> Any:
        skiprows = (lambda i: 0 < i <= skip) if skip else None
        try:
            return pd.read_csv(path, chunksize=page_rows, skiprows=skiprows)
        except pd.errors.EmptyDataError:
            return None

    with _translated(path, "reading"):
        reader = await asyncio.to_thread(open_reader)
    if reader is None:
        return
    try:
        while True:
            with _translated(path, "reading"):
                page = await asyncio.to_thread(next, reader, None)
            if page is None:
                return
            yield page
    finally:
        await asyncio.to_thread(reader.close)


async def _parquet_pages(path: Path, page_rows: int, skip: int) -> AsyncIterator[pd.DataFrame]:
    import pyarrow.parquet as pq  # deferred: only parquet reads need it

    def open_batches() -> tuple[Any, Iterator[Any], int]:
        pf = pq.ParquetFile(path)
        meta = pf.metadata
        first, left = 0, skip
        while first < meta.num_row_groups and meta.row_group(first).num_rows <= left:
            left -= meta.row_group(first).num_rows
            first += 1
        groups = list(range(first, meta.num_row_groups))
        return pf, pf.iter_batches(batch_size=page_rows, row_groups=groups), left

    def next_page(batches: Iterator[Any]) -> pd.DataFrame | None:
        batch = next(batches, None)
        return None if batch is None else batch.to_pandas()

    with _translated(path, "reading"):
        pf, batches, left = await asyncio.to_thread(open_batches)
    try:
        while True:
            with _translated(path, "reading"):
                page = await asyncio.to_thread(next_page, batches)
            if page is None:
                return
            if left:
                page, left = page.iloc[left:], max(0, left - len(page))
            yield page
    finally:
        await asyncio.to_thread(pf.close)


def _load_pickle(path: Path) -> pd.DataFrame:
    obj = pd.read_pickle(path)
    if isinstance(obj, pd.Series):
        obj = obj.to_frame()
    if not isinstance(obj, pd.DataFrame):
        raise BatchDecodeError(
            f"{path} holds a pickled {type(obj).__name__}, not a DataFrame: pickle a pandas DataFrame",
            path=str(path),
        )
    return obj


def _load_json(path: Path) -> pd.DataFrame:
    try:
        return pd.read_json(path)
    except ValueError as exc:
        if "Trailing data" not in str(exc):
            raise
        return pd.read_json(path, lines=True)  # a .json file that holds JSON lines


def _whole_file_producer(load: Callable[[Path], pd.DataFrame]) -> PageProducer:
    async def pages(path: Path, page_rows: int, skip: int) -> AsyncIterator[pd.DataFrame]:
        with _translated(path, "reading"):
            frame = await asyncio.to_thread(load, path)
        if not len(frame):
            yield frame  # no rows, but the columns are worth handing on (disposable reads)
            return
        for start in range(skip, len(frame), page_rows):
            yield frame.iloc[start : start + page_rows]

    return pages


async def _jsonl_pages(path: Path, page_rows: int, skip: int) -> AsyncIterator[pd.DataFrame]:
    with _translated(path, "reading"):
        reader = await asyncio.to_thread(pd.read_json, path, lines=True, chunksize=page_rows)
    left = skip
    try:
        while True:
            with _translated(path, "reading"):
                page = await asyncio.to_thread(next, reader, None)
            if page is None:
                return
            if left:
                page, left = page.iloc[left:], max(0, left - len(page))
                if not len(page):
                    continue
            yield page
    finally:
        await asyncio.to_thread(reader.close)


_PAGE_PRODUCERS: dict[str, PageProducer] = {
    "csv": _csv_pages,
    "json": _whole_file_producer(_load_json),
    "jsonl": _jsonl_pages,
    "parquet": _parquet_pages,
    "pickle": _whole_file_producer(_load_pickle),
}


# -- atomic writes ----------------------------------------------------------------------------


@contextlib.contextmanager
def _atomic_file(path: Path, *, copy_existing: bool = False) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it and move it over `path`.

    With `copy_existing`, the temp file starts as a copy of `path` (for appends).
    On any error the temp file is removed and `path` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies, as for a plain open
    os.close(fd)
    try:
        if path.exists():
            shutil.copymode(path, tmp)
            if copy_existing:
                shutil.copyfile(path, tmp)
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _aligned(df: pd.DataFrame, columns: list[str], path: Path) -> pd.DataFrame:
    """`df` with its columns in the file's order; refused when the column sets differ."""
    if set(map(str, df.columns)) != set(columns) or len(df.columns) != len(columns):
        raise RequestRejected(
            f"cannot append to {path}: its columns are {columns}, the rows have "
            f"{list(map(str, df.columns))}; write with mode='replace' or match the columns",
            path=str(path),
        )
    return df[columns]


def _has_rows(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def _write_frame(path: Path, fmt: str, df: pd.DataFrame, mode: WriteMode) -> None:
    append = mode == "append" and _has_rows(path)
    if fmt == "csv":
        if append:
            columns = [str(c) for c in pd.read_csv(path, nrows=0).columns]
            df = _aligned(df, columns, path)
        with _atomic_file(path, copy_existing=append) as tmp:
            if append:
                with open(tmp, "rb+") as fh:
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        fh.write(b"\n")
            df.to_csv(tmp, mode="a" if append else "w", header=not append, index=False)
    elif fmt == "jsonl":
        with _atomic_file(path, copy_existing=append) as tmp:
            text = df.to_json(orient="records", lines=True, date_format="iso") if len(df) else ""
            with open(tmp, "a", encoding="utf-8") as fh:
                if text and not text.endswith("\n"):
                    text += "\n"
                fh.write(text)
    else:
        if append:
            old = _READ_WHOLE[fmt](path)
            df = pd.concat([old, _aligned(df, [str(c) for c in old.columns], path)], ignore_index=True)
        with _atomic_file(path) as tmp:
            if fmt == "parquet":
                df.to_parquet(tmp, index=False)
            elif fmt == "pickle":
                df.to_pickle(tmp)
            else:
                df.to_json(tmp, orient="records", date_format="iso")


_READ_WHOLE: dict[str, Callable[[Path], pd.DataFrame]] = {
    "json": _load_json,
    "parquet": pd.read_parquet,
    "pickle": _load_pickle,
}
