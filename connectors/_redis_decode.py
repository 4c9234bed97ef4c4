"""REDIS bulk decoding: raw HGETALL reply buffers to Arrow columns with numpy, no per-field objects.

A batch of `HGETALL` replies is one buffer of RESP lines (`*10`, `$2`, `id`, `$5`, `12345`, ...).
`decode_hashes` finds every line end with numpy, checks the structure (each `$len` header
matches the length of the line after it, so a value holding CR LF is caught and the batch is
left to hiredis), and builds one Arrow array over the buffer whose items are the lines. Columns
are then `take`s of that array: the values are copied once, in C. Hashes with the same fields in
the same order (what the sink writes) take the fast path; differing fields are pivoted per name.
Error replies (`WRONGTYPE`: the key is not a hash) and empty replies (the key vanished) are
reported per reply so the caller can fetch those keys another way.

`table_from_rows` builds a table from Python rows (the slow path); `_redis_types` then gives
the columns their types.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

KEY_COLUMN = "_key"
"""Column holding each row's Redis key."""

KIND_HASH, KIND_EMPTY, KIND_ERROR = 0, 1, 2

_CR, _LF, _STAR, _DOLLAR, _MINUS = 13, 10, 42, 36, 45


@dataclass
class HashBatch:
    """What one buffer of HGETALL replies held.

    Attributes:
        kinds: per reply: KIND_HASH (a row), KIND_EMPTY (key gone) or KIND_ERROR.
        columns: field name -> binary array, one item per hash reply (null: field absent).
        errors: reply index -> error message, for the error replies.
    """

    kinds: np.ndarray
    columns: dict[str, pa.Array]
    errors: dict[int, str]


class _Lines:
    """Line boundaries of a RESP buffer, and an Arrow array whose item 2*i is line i."""

    def __init__(self, buf: bytes, a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        self.buf, self.a, self.starts, self.ends = buf, a, starts, ends
        self._pieces: pa.Array | None = None

    def pieces(self) -> pa.Array:
        if self._pieces is None:
            n = len(self.starts)
            big = len(self.buf) >= 2**31 - 1
            offsets = np.empty(2 * n + 1, np.int64 if big else np.int32)
            offsets[0 : 2 * n : 2] = self.starts
            offsets[1 : 2 * n : 2] = self.ends
            offsets[2 * n] = len(self.buf)
            kind = pa.large_binary() if big else pa.binary()
            self._pieces = pa.Array.from_buffers(
                kind, 2 * n, [None, pa.py_buffer(offsets), pa.py_buffer(self.buf)]
            )
        return self._pieces

    def take(self, lines: np.ndarray) -> pa.Array:
        """The content of the given lines (without CR LF) as one binary array."""
        return self.pieces().take(pa.array(2 * lines))


def _split_lines(buf: bytes) -> _Lines | None:
    a = np.frombuffer(buf, np.uint8)
    if len(a) < 2 or a[-2] != _CR or a[-1] != _LF:
        return None
    cr = np.flatnonzero(a[:-1] == _CR)
    ends = cr[a[cr + 1] == _LF]
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 2
    return _Lines(buf, a, starts, ends)


def _parse_ints(a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """The integers after the first character of each line (`$123`, `*10`); None if not digits."""
    digits = ends - starts - 1
    if not len(digits):
        return np.zeros(0, np.int64)
    most = int(digits.max())
    if digits.min() < 1 or most > 12:
        return None
    value = np.zeros(len(starts), np.int64)
    for j in range(most):
        has = digits > j
        d = a[np.where(has, starts + 1 + j, 0)].astype(np.int64) - 48
        if ((d < 0) | (d > 9))[has].any():
            return None
        value = np.where(has, value * 10 + d, value)
    return value


def _lengths_match(a: np.ndarray, starts: np.ndarray, ends: np.ndarray, lengths: np.ndarray) -> bool:
    """Whether each `$n` line (starts/ends) spells exactly the matching length, digit by digit.

    This is what proves the line split right: a value holding CR LF makes its line shorter
    than its `$n`. Lengths below 10 (most field names and many values) take one vectorized
    comparison; the others are checked digit by digit from the last one, on ever fewer lines.
    """
    if not len(lengths):
        return True
    digits = ends - starts - 1
    short = lengths < 10
    if not (digits[short] == 1).all() or not (a[starts[short] + 1] == 48 + lengths[short]).all():
        return False
    sel = np.flatnonzero(~short)
    if not len(sel):
        return True
    rest = lengths[sel]
    width = np.ones(len(sel), np.int64)
    power = 10
    while (more := rest >= power).any():
        width += more
        power *= 10
    if not (digits[sel] == width).all():
        return False
    last = ends[sel] - 1
    digit = 0
    while len(sel):
        if not (a[last - digit] == 48 + rest % 10).all():
            return False
        rest //= 10
        digit += 1
        keep = width > digit
        last, rest, width, sel = last[keep], rest[keep], width[keep], sel[keep]
    return True


def _same_bytes(lines: _Lines, idx: np.ndarray, expected: bytes) -> bool:
    """Whether every line in `idx` is exactly `expected` (numpy, byte by byte)."""
    if not ((lines.ends[idx] - lines.starts[idx]) == len(expected)).all():
        return False
    base = lines.starts[idx]
    return all((lines.a[base + j] == ch).all() for j, ch in enumerate(expected))


def _reply_heads(lines: _Lines, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Line index and element count (-1: error reply) of each of the `n` replies."""
    a, starts, ends = lines.a, lines.starts, lines.ends
    total = len(starts)
    first = bytes(lines.buf[starts[0] : ends[0]])
    if first[:1] == b"*" and first[1:].isdigit():
        width = int(first[1:])
        step = 1 + 2 * width
        if total == n * step:
            heads = np.arange(0, total, step)
            if _same_bytes(lines, heads, first):
                return heads, np.full(n, width, np.int64)
    lead = a[starts]
    star = np.flatnonzero(lead == _STAR)
    counts = _parse_ints(a, starts[star], ends[star])
    if counts is None:
        return None
    step_of = np.ones(total, np.int64)
    step_of[star] = 1 + 2 * counts
    heads_l: list[int] = []
    i = 0
    item = step_of.item
    for _ in range(n):
        if i >= total:
            return None
        heads_l.append(i)
        i += item(i)
    if i != total:
        return None
    heads = np.array(heads_l, np.int64)
    first_chars = lead[heads]
    if not ((first_chars == _STAR) | (first_chars == _MINUS)).all():
        return None
    widths = np.where(first_chars == _STAR, (step_of[heads] - 1) // 2, -1)
    return heads, widths


def decode_hashes(buf: bytes, n: int) -> HashBatch | None:
    """Decode `n` HGETALL replies; None when the buffer needs the general parser.

    Args:
        buf: the raw replies, nothing before or after them.
        n: how many replies it holds.
    """
    if n == 0:
        return HashBatch(np.zeros(0, np.int8), {}, {})
    lines = _split_lines(buf)
    if lines is None:
        return None
    found = _reply_heads(lines, n)
    if found is None:
        return None
    heads, widths = found
    if (widths > 0).any() and (widths[widths > 0] % 2).any():
        return None
    body = np.ones(len(lines.starts), bool)
    body[heads] = False
    body_lines = np.flatnonzero(body)
    if len(body_lines) % 2:
        return None
    headers, data = body_lines[0::2], body_lines[1::2]
    a, starts, ends = lines.a, lines.starts, lines.ends
    if not (a[starts[headers]] == _DOLLAR).all():
        return None
    if not _lengths_match(a, starts[headers], ends[headers], ends[data] - starts[data]):
        return None
    kinds = np.where(widths < 0, KIND_ERROR, np.where(widths == 0, KIND_EMPTY, KIND_HASH)).astype(np.int8)
    errors = {
        int(r): bytes(buf[starts[heads[r]] + 1 : ends[heads[r]]]).decode("utf-8", "replace")
        for r in np.flatnonzero(kinds == KIND_ERROR)
    }
    fields = np.where(widths > 0, widths // 2, 0)
    rows = int((kinds == KIND_HASH).sum())
    names, values = data[0::2], data[1::2]
    return HashBatch(kinds, _pivot(lines, names, values, fields[fields > 0], rows), errors)


def _pivot(
    lines: _Lines, names: np.ndarray, values: np.ndarray, per_row: np.ndarray, rows: int
) -> dict[str, pa.Array]:
    """Columns from (name line, value line) pairs; `per_row` is the pair count of each row."""
    if not rows:
        return {}
    width = int(per_row[0])
    if (per_row == width).all():
        grid_names = names.reshape(rows, width)
        grid_values = values.reshape(rows, width)
        firsts = [bytes(lines.buf[lines.starts[i] : lines.ends[i]]) for i in grid_names[0]]
        if len(set(firsts)) == width and all(
            _same_bytes(lines, grid_names[:, f], firsts[f]) for f in range(width)
        ):
            return {_name(firsts[f]): lines.take(grid_values[:, f]) for f in range(width)}
    row_of = np.repeat(np.arange(rows), per_row)
    encoded = lines.take(names).dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    out: dict[str, pa.Array] = {}
    for code, name in enumerate(encoded.dictionary.to_pylist()):
        sel = np.flatnonzero(codes == code)
        column = lines.take(values[sel])
        if len(sel) != rows:
            position = np.full(rows, -1, np.int64)
            position[row_of[sel]] = np.arange(len(sel))
            column = column.take(pa.array(position, mask=position < 0))
        out[_name(name)] = column
    return out


def _name(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


# -- the slow path: rows as Python objects ----------------------------------------------------


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value
    return value


def table_from_rows(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """A table from dict rows (bytes are decoded as UTF-8 where valid); columns in first-seen order."""
    names: dict[str, None] = {}
    for row in rows:
        for name in row:
            names.setdefault(name, None)
    columns = {}
    for name in names:
        values = [_text(row.get(name)) for row in rows]
        columns[name] = _array(values)
    return pa.table(columns) if columns else pa.table({KEY_COLUMN: pa.array([], pa.string())})


def _array(values: list[Any]) -> pa.Array:
    if any(isinstance(v, bytes) for v in values):
        return pa.array([v.encode() if isinstance(v, str) else v for v in values], pa.binary())
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array([None if v is None else _as_text(v) for v in values], pa.string())


def _as_text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def json_row(value: bytes) -> dict[str, Any] | None:
    """The fields of a JSON-object string value (nested values as JSON text); None if not one."""
    head = value[:64].lstrip()
    if not head.startswith(b"{"):
        return None
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    return {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in doc.items()}
