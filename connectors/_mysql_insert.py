"""Multi-row INSERT statements of the MYSQL sink, rendered column-wise by Arrow compute, not value by value.

pymysql's `executemany` escapes every value in Python (~100k rows/s). Here each column becomes
an Arrow string array of SQL literals in one vectorised pass (numbers cast to text, strings
escaped and quoted, NULL/NaN as NULL), the columns are joined into `(v1,v2,...),` row texts,
and statements are cut straight out of the joined buffer at `max_bytes`. Columns Arrow cannot
type (mixed objects, durations, bytes) fall back to the driver's own per-value escaping.

String escaping follows the session: `'` is always doubled, and `\\` is doubled unless the
server runs with NO_BACKSLASH_ESCAPES; the connection charset must be utf8/utf8mb4/latin1/ascii
(multi-byte charsets such as GBK could turn an escape into part of a character).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pymysql import converters

from connectors._mysql_sql import CONVERSIONS, quote_ident
from connectors.errors import RequestRejected

SAFE_CHARSETS = frozenset({"utf8mb4", "utf8", "utf8mb3", "latin1", "ascii"})

Escape = Callable[[Any], str]
"""The literal for one Python value, for columns Arrow cannot render."""


def make_escape(backslashes: bool) -> Escape:
    """pymysql's literal for a value, with strings escaped the way the session reads them."""

    def escape(value: Any) -> str:
        if isinstance(value, str):
            return "'" + (converters.escape_string(value) if backslashes else value.replace("'", "''")) + "'"
        return str(converters.escape_item(value, "utf8mb4", mapping=CONVERSIONS))

    return escape


_QUOTE = pa.scalar("'", pa.large_string())
_NOTHING = pa.scalar("", pa.large_string())


def _quoted(strings: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(_QUOTE, pc.cast(strings, pa.large_string()), _QUOTE, _NOTHING)


def _python_literals(values: Sequence[Any], escape: Escape) -> pa.Array:
    out = []
    for value in values:
        if (
            value is None
            or value is pd.NA
            or value is pd.NaT
            or (isinstance(value, float) and value != value)
        ):
            out.append("NULL")
        elif isinstance(value, (bytes, bytearray, memoryview)):
            out.append(f"X'{bytes(value).hex()}'")
        else:
            out.append(escape(value))
    return pa.array(out, type=pa.large_string())


def column_literals(series: pd.Series[Any], name: str, *, backslashes: bool, escape: Escape) -> pa.Array:
    """SQL literals (a large_string array without nulls) for one DataFrame column.

    Raises:
        RequestRejected: values MySQL cannot store (infinite floats).
    """
    try:
        arr = pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return _python_literals(series.tolist(), escape)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    kind = arr.type
    if pa.types.is_dictionary(kind):
        arr = arr.dictionary_decode()
        kind = arr.type
    if pa.types.is_boolean(kind):
        text = pc.cast(pc.cast(arr, pa.int8()), pa.string())
    elif pa.types.is_integer(kind):
        text = pc.cast(arr, pa.string())
    elif pa.types.is_floating(kind):
        if pc.any(pc.is_inf(arr)).as_py():
            raise RequestRejected(
                f"column {name} holds infinite values, which MySQL cannot store: replace them (e.g. with NaN)"
            )
        arr = pc.if_else(pc.is_nan(arr), pa.scalar(None, kind), arr)
        text = pc.cast(arr, pa.string())
    elif pa.types.is_decimal(kind) or pa.types.is_date(kind):
        text = _quoted(pc.cast(arr, pa.string()))
    elif pa.types.is_timestamp(kind):
        naive = pc.cast(arr, pa.timestamp("us"), safe=False)  # tz-aware: UTC wall time; ns: truncated
        text = _quoted(pc.cast(naive, pa.string()))
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if backslashes:
            arr = pc.replace_substring(arr, "\\", "\\\\")
        text = _quoted(pc.replace_substring(arr, "'", "''"))
    elif pa.types.is_null(kind):
        return pa.array(["NULL"] * len(arr), type=pa.large_string())
    else:  # binary, durations, nested: the driver's escaping, value by value
        return _python_literals(series.tolist(), escape)
    return pc.fill_null(pc.cast(text, pa.large_string()), "NULL")


def insert_statements(
    df: pd.DataFrame,
    table: str,
    *,
    extra: dict[str, str] | None = None,
    suffix: str = "",
    max_bytes: int,
    backslashes: bool,
    escape: Escape,
) -> Iterator[bytes]:
    """`INSERT INTO table (cols) VALUES (...),(...)...suffix` statements of at most ~`max_bytes`.

    Args:
        df: the rows.
        table: quoted table name.
        extra: constant columns added to every row (name -> SQL literal), e.g. the run key.
        suffix: appended to each statement (`ON DUPLICATE KEY UPDATE ...`).
        max_bytes: statement size to aim for (one row longer than that gets a statement alone).
        backslashes: the session treats `\\` as an escape character.
        escape: per-value fallback escaping.
    """
    if not len(df):
        return
    names = [str(c) for c in df.columns] + list(extra or {})
    columns = [_literals(df, i, backslashes=backslashes, escape=escape) for i in range(df.shape[1])]
    columns += [pa.array([literal] * len(df), type=pa.large_string()) for literal in (extra or {}).values()]
    rows = pc.binary_join_element_wise(
        pa.scalar("(", pa.large_string()), *_interleave(columns), pa.scalar("),", pa.large_string()), _NOTHING
    )
    head = f"INSERT INTO {table} ({', '.join(map(quote_ident, names))}) VALUES ".encode()
    tail = suffix.encode()
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)[rows.offset : rows.offset + len(rows) + 1]
    data = memoryview(rows.buffers()[2])
    start = 0
    while start < len(rows):
        base = offsets[start]
        stop = int(np.searchsorted(offsets, base + max_bytes, side="right")) - 1
        stop = max(stop, start + 1)
        body = data[base : offsets[stop] - 1]  # drop the last row's trailing comma
        yield head + bytes(body) + tail
        start = stop


def _literals(df: pd.DataFrame, i: int, *, backslashes: bool, escape: Escape) -> pa.Array:
    name = str(df.columns[i])
    try:
        return column_literals(df.iloc[:, i], name, backslashes=backslashes, escape=escape)
    except (TypeError, ValueError, UnicodeError, pa.ArrowException) as exc:
        raise RequestRejected(
            f"column {name} holds values MySQL cannot store ({type(exc).__name__}: {str(exc)[:120]}): "
            "convert them to numbers, strings, bytes or timestamps first"
        ) from exc


def _interleave(columns: list[pa.Array]) -> list[Any]:
    """Column arrays with `,` separators between them, for one element-wise join."""
    out: list[Any] = []
    for i, col in enumerate(columns):
        if i:
            out.append(pa.scalar(",", pa.large_string()))
        out.append(col)
    return out
