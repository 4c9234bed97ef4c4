"""File formats shared by every file-like store (FILE, S3, OSS): detect, page, encode and write frames.

The object stores download an object (through `connectors.cache`) and then page the local copy
with `file_pages`, so every store reads csv, parquet, pickle, json and JSON lines the same way.

Pages hold exactly `page_rows` rows (the last one may be shorter). The resume cursor:

- csv and jsonl: a dict `{"rows": R, "offset": B, "offset_rows": RB}`: R rows were handed on,
  byte B of the (decompressed) file starts a record and RB rows lie before it. A resumed read
  seeks to B and skips `R - RB` records, so resuming near the end of a large file costs no
  re-parse of what came before. `offset` None means "the first record after the header". An
  int cursor is taken as a row count.
- parquet, pickle, json: an int, the rows handed on (parquet skips whole row groups).

Each csv/jsonl page carries its own end position (`DataFrame.attrs["_atom_cursor"]`, or the
Arrow schema metadata key `_atom_cursor`); `format_advance(fmt)` reads it back, so the cursor
is exact even when the paging layer re-chunks pages into other batch sizes.
"""

from __future__ import annotations

import contextlib
import json
import pickle
from collections.abc import AsyncIterator, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pandas as pd

from connectors._format_pages import format_advance, load_frame, raw_file_pages
from connectors._frame_writer import FrameWriter, Transform, align_columns, csv_columns, jsonl_text
from connectors._paging import Frame
from connectors.errors import (
    BatchDecodeError,
    ConnectorConfigError,
    ConnectorError,
    PermissionDenied,
    RequestRejected,
    SourceUnavailable,
    TargetNotFound,
)

if TYPE_CHECKING:
    pass

__all__ = [
    "COMPRESSION_SUFFIXES",
    "EXTENSIONS",
    "FORMATS",
    "FrameWriter",
    "Transform",
    "align_columns",
    "csv_columns",
    "detect_format",
    "encode_frame",
    "file_pages",
    "format_advance",
    "load_frame",
    "translate_errors",
    "write_frame_file",
]

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

EXTENSIONS: dict[str, str] = {
    "csv": "csv",
    "json": "json",
    "jsonl": "jsonl",
    "parquet": "parquet",
    "pickle": "pkl",
}
"""The file extension each format writes (directory datasets name their parts with it)."""

COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zip", ".zst", ".tar"}


def _name_path(name: str | Path) -> PurePosixPath:
    if isinstance(name, Path):
        return PurePosixPath(name.as_posix())
    if "://" in name:
        name = urlparse(name).path
    return PurePosixPath(name)


def detect_format(name: str | Path, data_format: str = "") -> str:
    """The format to use for a file or object: `data_format` when given, else the extension.

    The original runtime's `labelsCSV` described the content (a labelled table), not the
    encoding: its example pairs it with `.pkl` files. For it, a known extension wins.

    Args:
        name: a path, object key or URL (its query is ignored).
        data_format: the data source's dataFormat (any case); "" to use the extension.

    Returns:
        One of csv, parquet, pickle, json, jsonl.

    Raises:
        ConnectorConfigError: neither names a known format.
    """
    path = _name_path(name)
    if data_format.lower() == "labelscsv":
        data_format = FORMATS.get(path.suffix.lower().lstrip("."), "") or "csv"
    if data_format:
        fmt = FORMATS.get(data_format.lower())
        if fmt is None:
            raise ConnectorConfigError(
                f"unknown dataFormat {data_format!r} for {name}: "
                f"valid values are {', '.join(sorted(FORMATS))}"
            )
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes.pop()
    fmt = FORMATS.get(suffixes[-1].lstrip(".") if suffixes else "")
    if fmt is None:
        raise ConnectorConfigError(
            f"cannot tell the format of {name} from its extension: set the data source's dataFormat "
            f"to one of {', '.join(sorted(FORMATS))}"
        )
    return fmt


@contextlib.contextmanager
def translate_errors(name: str | Path, doing: str) -> Iterator[None]:
    """Turn OS, pandas and pyarrow errors about `name` into connector errors.

    Args:
        name: the file or object, as messages should name it.
        doing: "reading" or "writing" (decode errors while writing become `RequestRejected`).
    """
    import pyarrow as pa  # deferred: only file I/O needs it

    try:
        yield
    except ConnectorError:
        raise
    except FileNotFoundError as exc:
        raise TargetNotFound(
            f"file {name} does not exist: check the data source's path", path=str(name)
        ) from exc
    except PermissionError as exc:
        raise PermissionDenied(
            f"no permission {doing} {name}: check the file's owner and mode", path=str(name)
        ) from exc
    except IsADirectoryError as exc:
        raise ConnectorConfigError(f"{name} is a directory: name a file", path=str(name)) from exc
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
            raise RequestRejected(f"cannot write these rows to {name}: {detail}", path=str(name)) from exc
        raise BatchDecodeError(f"cannot decode {name}: {detail}", path=str(name)) from exc
    except OSError as exc:
        raise SourceUnavailable(f"I/O error {doing} {name}: {exc.strerror or exc}", path=str(name)) from exc


def write_frame_file(path: Path, df: pd.DataFrame, fmt: str, *, append_to: Path | None = None) -> None:
    """Write `df` to `path` (blocking; not atomic: write a temp file and rename it).

    Args:
        path: the file to create (overwritten).
        df: the rows.
        fmt: the format.
        append_to: an existing file of the same format whose rows come first (columns must
            match `df`'s; csv keeps its header); copied streaming for csv, jsonl and parquet.

    Raises:
        RequestRejected: `df`'s columns differ from `append_to`'s.
    """
    writer = FrameWriter(path, fmt, name=append_to or path)
    try:
        if append_to is not None:
            writer.append_file(append_to)
        writer.write(df)
        writer.close()
    except BaseException:
        writer.discard()
        raise


def encode_frame(df: pd.DataFrame, fmt: str) -> bytes:
    """`df` as the bytes of a whole file in `fmt` (no index column)."""
    import io

    if fmt == "csv":
        return df.to_csv(index=False, lineterminator="\n").encode("utf-8")
    if fmt == "jsonl":
        return jsonl_text(df).encode("utf-8")
    if fmt == "json":
        return (df.to_json(orient="records", date_format="iso") or "[]").encode("utf-8")
    buf = io.BytesIO()
    if fmt == "parquet":
        df.to_parquet(buf, index=False)
    elif fmt == "pickle":
        df.to_pickle(buf)
    else:
        raise ConnectorConfigError(
            f"unknown format {fmt!r}: valid values are {', '.join(sorted(EXTENSIONS))}"
        )
    return buf.getvalue()


def file_pages(
    path: Path, fmt: str, *, page_rows: int, cursor: Any, arrow: bool = False, name: str | Path | None = None
) -> AsyncIterator[Frame]:
    """Pages of a local file: `page_rows` rows each (the last shorter), starting after `cursor`.

    Args:
        path: the file (csv/jsonl may be gz/bz2/xz/zip/zst/tar-compressed).
        fmt: its format (see `detect_format`).
        page_rows: rows per page.
        cursor: where to start: None, or a cursor a reader reported (see the module docstring).
        arrow: yield `pyarrow.Table`s instead of DataFrames.
        name: how error messages name the data (an object's URI; default: `path`); its suffix
            also tells the compression of csv/jsonl (`x.csv.gz`) when `path` is a cache blob.

    Returns:
        An async iterator of pages. Errors arrive translated: `TargetNotFound`,
        `BatchDecodeError`, `PermissionDenied`, `SourceUnavailable`.
    """
    return _translated_pages(raw_file_pages(path, fmt, page_rows, cursor, arrow, name), name or path)


async def _translated_pages(pages: AsyncIterator[Any], name: str | Path) -> AsyncIterator[Any]:
    try:
        while True:
            with translate_errors(name, "reading"):
                try:
                    page = await pages.__anext__()
                except StopAsyncIteration:
                    return
            yield page
    finally:
        close = getattr(pages, "aclose", None)
        if close is not None:
            with translate_errors(name, "reading"):
                await close()


def cursor_json(cursor: Any) -> str:
    """A cursor as compact JSON (for logs and persisted resume points)."""
    return json.dumps(cursor, separators=(",", ":"), default=str)
