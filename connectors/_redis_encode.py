"""REDIS sink encoding: DataFrame batches to RESP commands with Arrow string kernels.

A batch becomes text columns (`text_column`: numbers in shortest round-trip form, booleans
`true`/`false`, timestamps ISO 8601, nested values as JSON, bytes as they are) and then one RESP
command string per row built by `binary_join_element_wise` (`bulk`, `joined`), so no Python
object is made per field. `flat` hands the concatenated bytes of such an array to a socket
without copying.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def lit(value: bytes) -> pa.Scalar:
    """A binary scalar (the constant parts of a command)."""
    return pa.scalar(value, pa.binary())


def len_text(values: pa.Array) -> pa.Array:
    """Each item's length in bytes, as decimal text."""
    return pc.binary_length(values).cast(pa.string()).cast(pa.binary())


def bulk(values: pa.Array) -> pa.Array:
    """Each value as a RESP bulk string `$len\\r\\nvalue\\r\\n` (null stays null)."""
    return pc.binary_join_element_wise(
        lit(b"$"), len_text(values), lit(b"\r\n"), values, lit(b"\r\n"), lit(b"")
    )


def joined(parts: Iterable[pa.Array | pa.Scalar]) -> pa.Array:
    """Per row, the parts concatenated; a null part contributes nothing."""
    return pc.binary_join_element_wise(*parts, lit(b""), null_handling="replace", null_replacement=b"")


def flat(values: pa.Array) -> memoryview:
    """The concatenated bytes of a binary array's items, without copying."""
    values = values.cast(pa.binary()) if not pa.types.is_binary(values.type) else values
    if not len(values):
        return memoryview(b"")
    offsets = np.frombuffer(values.buffers()[1], np.int32, len(values) + 1, values.offset * 4)
    return memoryview(values.buffers()[2])[int(offsets[0]) : int(offsets[-1])]


def text_column(column: pa.Array) -> pa.Array:
    """A column as UTF-8 (or raw bytes) text, the way the sink stores it."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.dictionary_decode()
        kind = column.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return column.cast(pa.binary())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column.cast(pa.string()).cast(pa.binary())
    if pa.types.is_nested(kind):
        values = [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()]
        return pa.array(values, pa.string()).cast(pa.binary())
    try:
        return column.cast(pa.string()).cast(pa.binary())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.binary())


def arrow_column(series: pd.Series) -> pa.Array:
    """A DataFrame column as Arrow (NaN -> null); mixed Python objects as JSON/str text."""
    try:
        return pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        values = [
            None
            if v is None or (isinstance(v, float) and v != v)
            else json.dumps(v, default=str)
            if isinstance(v, dict | list | tuple)
            else str(v)
            for v in series.tolist()
        ]
        return pa.array(values, pa.string())


def first_error(data: bytes) -> str | None:
    """The first error reply in a buffer of replies (hiredis; nested EXEC results included)."""
    import hiredis  # deferred: only needed when an error line shows up

    reader = hiredis.Reader()
    reader.feed(data)
    stack: list[Any] = []
    while (reply := reader.gets()) is not False:
        stack.append(reply)
        while stack:
            item = stack.pop()
            if isinstance(item, hiredis.ReplyError):
                return str(item)
            if isinstance(item, list):
                stack.extend(item)
    return None


@dataclass
class Encoded:
    """One batch, ready to send: final keys, staging keys and the RESP of each row."""

    keys: pa.Array
    stage: pa.Array
    payload: pa.Array
