"""Column types of the MYSQL connector: result metadata -> one Arrow schema -> the pandas dtypes users get.

Both read engines (connectorx over the binary protocol, pymysql over the text protocol) turn a
page into the same *canonical* Arrow table, whose types come from the result's column metadata
(`Column`), and then into pandas the same way. A page therefore looks the same whichever engine
fetched it, and its dtypes do not depend on the values in it (a nullable INT column is `Int64`
on every page, with or without NULLs in that page):

| MySQL column                               | Arrow (`ReadOptions.arrow`) | pandas                        |
|--------------------------------------------|-----------------------------|-------------------------------|
| TINYINT..BIGINT, YEAR, NOT NULL            | int64 (BIGINT UNSIGNED: uint64) | int64 / uint64            |
| the same, nullable                         | int64 / uint64              | Int64 / UInt64 (NULL: pd.NA)  |
| FLOAT / DOUBLE                             | float32 / float64           | float32 / float64 (NULL: NaN) |
| DECIMAL(p,s)                               | decimal128(p,s)             | ArrowDtype(decimal128(p,s)) * |
| DATETIME(n), TIMESTAMP(n)                  | timestamp[us]               | datetime64[us] (NULL: NaT)    |
| DATE                                       | date32                      | datetime64[ms] (NULL: NaT)    |
| TIME                                       | duration[us]                | timedelta64[us]               |
| CHAR, VARCHAR, TEXT, ENUM, SET, JSON       | string                      | pandas' default str dtype     |
| BINARY, VARBINARY, BLOB, BIT, GEOMETRY     | binary                      | object (bytes, NULL: None)    |

`*` exact decimals, zero-copy; `source_conf={"decimal": "float"}` gives float64 and
`{"decimal": "object"}` gives `decimal.Decimal` objects (what pandas.read_sql returns, ~0.4 s per
million values). Every other conversion is zero-copy or one vectorised pass.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
from pymysql.constants import FIELD_TYPE, FLAG

DecimalMode = Literal["arrow", "float", "object"]
DECIMAL_MODES: tuple[str, ...] = ("arrow", "float", "object")

BINARY_CHARSET = 63
"""charsetnr of binary strings (BINARY, VARBINARY, BLOB)."""

_INTS = {FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.INT24, FIELD_TYPE.LONG, FIELD_TYPE.LONGLONG}
_DECIMALS = {FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL}
_TIMESTAMPS = {FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP}
_DATES = {FIELD_TYPE.DATE, FIELD_TYPE.NEWDATE}
_STRINGS = {
    FIELD_TYPE.VARCHAR,
    FIELD_TYPE.VAR_STRING,
    FIELD_TYPE.STRING,
    FIELD_TYPE.ENUM,
    FIELD_TYPE.SET,
    FIELD_TYPE.JSON,
    FIELD_TYPE.TINY_BLOB,
    FIELD_TYPE.MEDIUM_BLOB,
    FIELD_TYPE.LONG_BLOB,
    FIELD_TYPE.BLOB,
}
_BULK_MAX_PRECISION = 28
"""connectorx decodes DECIMAL through rust_decimal: at most 28 digits ..."""
_BULK_MAX_SCALE = 10
"""... and hands them over as decimal128(38, 10), so a larger scale would be rounded."""


@dataclass(frozen=True)
class Column:
    """One result column as the server describes it (pymysql's field packet).

    Attributes:
        name: column name (or alias).
        type_code: `pymysql.constants.FIELD_TYPE`.
        flags: `pymysql.constants.FLAG` bits (NOT_NULL, UNSIGNED, ...).
        charsetnr: collation id; 63 means binary.
        length: display length (DECIMAL: digits plus sign and point).
        scale: decimals (DECIMAL, fractional seconds).
    """

    name: str
    type_code: int
    flags: int = 0
    charsetnr: int = 45
    length: int = 0
    scale: int = 0

    @classmethod
    def from_field(cls, field: Any) -> Column:
        """Build from a `pymysql.protocol.FieldDescriptorPacket`."""
        return cls(
            name=str(field.name),
            type_code=int(field.type_code),
            flags=int(field.flags),
            charsetnr=int(field.charsetnr),
            length=int(field.length),
            scale=int(field.scale),
        )

    @property
    def nullable(self) -> bool:
        return not self.flags & FLAG.NOT_NULL

    @property
    def unsigned(self) -> bool:
        return bool(self.flags & FLAG.UNSIGNED)

    @property
    def is_integer(self) -> bool:
        return self.type_code in _INTS or self.type_code == FIELD_TYPE.YEAR

    @property
    def precision(self) -> int:
        """DECIMAL digits, recovered from the display length (sign and point excluded)."""
        digits = self.length - (1 if self.scale else 0) - (0 if self.unsigned else 1)
        return max(1, digits, self.scale)

    @property
    def arrow_type(self) -> pa.DataType:
        """The canonical Arrow type of this column (see the module table)."""
        code = self.type_code
        if self.is_integer:
            return pa.uint64() if code == FIELD_TYPE.LONGLONG and self.unsigned else pa.int64()
        if code == FIELD_TYPE.FLOAT:
            return pa.float32()
        if code == FIELD_TYPE.DOUBLE:
            return pa.float64()
        if code in _DECIMALS:
            precision = self.precision
            if precision <= 38:
                return pa.decimal128(precision, self.scale)
            return pa.decimal256(precision, self.scale)
        if code in _TIMESTAMPS:
            return pa.timestamp("us")
        if code in _DATES:
            return pa.date32()
        if code == FIELD_TYPE.TIME:
            return pa.duration("us")
        if code == FIELD_TYPE.NULL:
            return pa.null()
        if code == FIELD_TYPE.JSON:
            return pa.string()  # MySQL 8 labels JSON binary, but sends (and pymysql decodes) text
        if code in _STRINGS and self.charsetnr != BINARY_CHARSET:
            return pa.string()
        return pa.binary()  # binary strings, BIT, GEOMETRY and anything unknown: raw bytes

    @property
    def bulk_ok(self) -> bool:
        """Whether connectorx decodes this column exactly (else the read uses pymysql)."""
        code = self.type_code
        if code in _DECIMALS:
            return self.precision <= _BULK_MAX_PRECISION and self.scale <= _BULK_MAX_SCALE
        # TIME is a duration in MySQL (-838:59:59..838:59:59); connectorx reads a time of day.
        return code not in (FIELD_TYPE.TIME, FIELD_TYPE.GEOMETRY, FIELD_TYPE.NULL)

    def describe(self) -> str:
        return f"{self.name} {self.arrow_type}"


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    """The canonical schema of a result with these columns."""
    return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in columns])


def _py_type(kind: pa.DataType) -> tuple[type, ...]:
    """Python value types pymysql yields for a canonical Arrow type (anything else becomes NULL)."""
    if pa.types.is_integer(kind):
        return (int,)
    if pa.types.is_floating(kind):
        return (float, int)
    if pa.types.is_decimal(kind):
        return (decimal.Decimal, int)
    if pa.types.is_timestamp(kind):
        return (dt.datetime,)
    if pa.types.is_date(kind):
        return (dt.date,)
    if pa.types.is_duration(kind):
        return (dt.timedelta,)
    if pa.types.is_string(kind):
        return (str,)
    return (bytes, bytearray, memoryview, str)


def _array(values: list[Any], kind: pa.DataType) -> pa.Array:
    try:
        return pa.array(values, type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        # zero dates ('0000-00-00') arrive as strings: they become NULL, like in connectorx
        ok = _py_type(kind)
        clean = [v if isinstance(v, ok) else None for v in values]
        if pa.types.is_date(kind):
            clean = [v.date() if isinstance(v, dt.datetime) else v for v in clean]
        elif pa.types.is_binary(kind):
            clean = [v.encode() if isinstance(v, str) else v for v in clean]
        return pa.array(clean, type=kind)


def arrow_from_rows(rows: Sequence[Sequence[Any]], columns: Sequence[Column]) -> pa.Table:
    """Rows fetched by pymysql as a canonical Arrow table."""
    arrays = [_array([row[i] for row in rows], col.arrow_type) for i, col in enumerate(columns)]
    return pa.Table.from_arrays(arrays, schema=arrow_schema(columns))


def conform(table: pa.Table, columns: Sequence[Column]) -> pa.Table:
    """A connectorx table cast to the canonical schema (int8 -> int64, decimal128(38,10) -> (p,s), ...)."""
    schema = arrow_schema(columns)
    arrays = []
    for i, field in enumerate(schema):
        column = table.column(i)
        arrays.append(column if column.type == field.type else column.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def to_pandas(table: pa.Table, columns: Sequence[Column], decimals: DecimalMode = "arrow") -> pd.DataFrame:
    """A canonical Arrow table as a DataFrame with the dtypes of the module table.

    Numeric, datetime and string columns are handed over without copying where Arrow's layout
    allows (one block per column, no consolidation); nullable integers become pandas' masked
    Int64 so their dtype does not depend on whether a page happens to hold a NULL.
    """
    if decimals == "float":
        schema = table.schema
        for i, field in enumerate(schema):
            if pa.types.is_decimal(field.type):
                # through text: Arrow's direct decimal -> float cast is not correctly rounded
                as_text = table.column(i).cast(pa.string())
                table = table.set_column(i, field.name, as_text.cast(pa.float64()))

    def mapper(kind: pa.DataType) -> Any:
        if decimals == "arrow" and pa.types.is_decimal(kind):
            return pd.ArrowDtype(kind)
        return None

    df = table.to_pandas(split_blocks=True, date_as_object=False, types_mapper=mapper)
    for i, col in enumerate(columns):
        if col.is_integer and col.nullable:
            masked = pd.UInt64Dtype() if table.schema[i].type == pa.uint64() else pd.Int64Dtype()
            df.isetitem(i, masked.__from_arrow__(table.column(i)))
    return df
