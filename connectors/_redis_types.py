"""REDIS column types: the sink's schema key entries, and inference for data written by others.

Redis stores text. A prefix written by the sink has a schema key (`<prefix>__atom_schema`,
column -> Arrow type name) and `apply_types` casts each column to what it declares. Columns it
does not declare, and prefixes without one, are inferred per page: text that parses as int64
(without leading zeros) becomes int64, else float64, else it stays text; a column only widens
from page to page (int -> float -> text), so a later page never narrows what an earlier one gave.
Values that are not valid UTF-8 stay binary.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from connectors._redis_decode import KEY_COLUMN
from connectors.errors import BatchDecodeError

EMPTY_ROW_FIELD = "__atom_row"
"""Field the sink gives a row with no non-null value (a hash cannot be empty); reads drop it."""


_INT_TYPES = {f"{p}int{b}": getattr(pa, f"{p}int{b}")() for p in ("", "u") for b in (8, 16, 32, 64)}
_SIMPLE_TYPES: dict[str, pa.DataType] = {
    **_INT_TYPES,
    "float": pa.float32(),
    "halffloat": pa.float16(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "large_string": pa.string(),
    "binary": pa.binary(),
    "large_binary": pa.binary(),
    "date32[day]": pa.date32(),
    "date64[ms]": pa.date64(),
}
_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]$")
_DECIMAL = re.compile(r"decimal(?:128|256)\((\d+), (-?\d+)\)$")
_DICTIONARY = "dictionary<"
_WIDTH = {"int": 0, "float": 1, "string": 2}


def type_name(kind: pa.DataType) -> str:
    """How the sink's schema key records an Arrow type (its `str()`; dictionaries of strings too)."""
    return str(kind)


def parse_type(name: str) -> pa.DataType | None:
    """The Arrow type a schema entry names (dictionaries: a dictionary of strings); None if unknown."""
    name = name.strip()
    if name in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[name]
    if m := _TIMESTAMP.match(name):
        return pa.timestamp(m.group(1), tz=m.group(2))
    if m := _DECIMAL.match(name):
        precision, scale = int(m.group(1)), int(m.group(2))
        return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
    if name.startswith(_DICTIONARY):
        return pa.dictionary(pa.int32(), pa.string())
    return None


def _text_column(column: pa.Array) -> pa.Array:
    """Binary -> string where every value is valid UTF-8; binary otherwise."""
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        try:
            return column.cast(pa.string())
        except pa.ArrowInvalid:
            return column
    return column


def _infer(column: pa.Array, widest: str | None) -> tuple[pa.Array, str | None]:
    """Numeric-looking strings become int64/float64; `widest` is what earlier pages became."""
    if not pa.types.is_string(column.type) or widest == "string" or column.null_count == len(column):
        return column, widest
    if widest != "float":
        try:
            as_int = column.cast(pa.int64())
        except pa.ArrowInvalid:
            pass
        else:
            padded = pc.and_(pc.starts_with(column, "0"), pc.greater(pc.utf8_length(column), 1))
            if not pc.any(padded).as_py():
                return as_int, "int"
            return column, "string"
    try:
        return column.cast(pa.float64()), "float"
    except pa.ArrowInvalid:
        return column, "string"


def apply_types(
    table: pa.Table, schema: dict[str, pa.DataType] | None, widest: dict[str, str], where: str
) -> pa.Table:
    """Give a page's columns their types.

    Args:
        table: columns as read (binary/string, or typed for JSON and element reads).
        schema: column -> type from the sink's schema key; None to infer instead.
        widest: per column, the widest inferred kind so far (int < float < string); updated.
        where: the key pattern, for messages.

    Raises:
        BatchDecodeError: a value does not parse as the type the schema key declares.
    """
    columns = {}
    for name in table.column_names:
        if name == EMPTY_ROW_FIELD:
            continue
        column = _text_column(table.column(name).combine_chunks())
        declared = schema.get(name) if schema else None
        if declared is not None and name != KEY_COLUMN:
            column = _cast_declared(column, declared, name, where)
        elif name != KEY_COLUMN:
            column, kind = _infer(column, widest.get(name))
            if kind is not None:
                before = widest.get(name, kind)
                widest[name] = kind if _WIDTH[kind] >= _WIDTH[before] else before
            if widest.get(name) == "float" and pa.types.is_integer(column.type):
                column = column.cast(pa.float64())
        columns[name] = column
    if schema and len(table):
        for name, declared in schema.items():
            if name not in columns:
                columns[name] = pa.nulls(len(table), declared)
    return pa.table(columns) if columns else pa.table({KEY_COLUMN: pa.array([], pa.string())})


def _cast_declared(column: pa.Array, declared: pa.DataType, name: str, where: str) -> pa.Array:
    if column.type == declared:
        return column
    try:
        if pa.types.is_dictionary(declared):
            return column.cast(pa.string()).dictionary_encode()
        if pa.types.is_boolean(declared) and pa.types.is_string(column.type):
            column = pc.utf8_lower(column)
        return column.cast(declared)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise BatchDecodeError(
            f"column {name!r} of {where} holds a value that is not {declared} as its schema key declares "
            f"({exc}): fix the value or delete the schema key to read untyped"
        ) from exc
