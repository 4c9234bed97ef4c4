"""SQL text and type mapping for the MYSQL connector: identifiers, rows <-> DataFrames, DDL from dtypes.

Pure functions with no connection of their own, so they can be tested and reused without a server.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pymysql import converters
from pymysql.constants import FIELD_TYPE

from connectors.errors import ConnectorConfigError

_DATETIME_TYPES = {FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP, FIELD_TYPE.DATE, FIELD_TYPE.NEWDATE}
_NUMERIC_TYPES = {
    FIELD_TYPE.TINY,
    FIELD_TYPE.SHORT,
    FIELD_TYPE.LONG,
    FIELD_TYPE.LONGLONG,
    FIELD_TYPE.INT24,
    FIELD_TYPE.FLOAT,
    FIELD_TYPE.DOUBLE,
    FIELD_TYPE.YEAR,
}


def _encoders() -> dict[Any, Any]:
    """pymysql's conversions plus encoders for the numpy and pandas scalars a DataFrame holds."""
    conv: dict[Any, Any] = dict(converters.conversions)
    conv.update(
        {
            pd.Timestamp: converters.escape_datetime,
            pd.Timedelta: converters.escape_timedelta,
            np.int64: lambda v, m=None: str(int(v)),
            np.int32: lambda v, m=None: str(int(v)),
            np.float64: lambda v, m=None: converters.escape_float(float(v)),
            np.float32: lambda v, m=None: converters.escape_float(float(v)),
            np.bool_: lambda v, m=None: "1" if v else "0",
        }
    )
    return conv


CONVERSIONS = _encoders()


def ident_parts(name: str) -> list[str]:
    """`db.t`, `` `db`.`t` `` or `` `a.b` `` split into unquoted identifier parts."""
    if "`" in name:
        return [p.replace("``", "`") for p in re.findall(r"`((?:[^`]|``)*)`", name)] or [name.strip("`")]
    return name.split(".", 1)


def quote_ident(name: str) -> str:
    """A backtick-quoted identifier; `db.table` becomes `` `db`.`table` ``."""
    return ".".join("`" + p.replace("`", "``") + "`" for p in ident_parts(name))


def is_query(target: str) -> bool:
    """True when `target` is SQL rather than a table name."""
    return bool(re.match(r"\s*((select|with)\b|\()", target, re.IGNORECASE)) or bool(
        re.search(r"\s", target.strip())
    )


def split_table(target: str) -> tuple[str | None, str]:
    """(schema or None, table) of a table name."""
    parts = ident_parts(target)
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def frame_from_rows(rows: Sequence[Sequence[Any]], description: Any) -> pd.DataFrame:
    """Build a page from fetched tuples; datetimes become datetime64, DECIMAL stays Decimal."""
    names = [d[0] for d in description]
    df = pd.DataFrame.from_records(rows, columns=names, coerce_float=False)
    if not rows:
        return df
    for i, d in enumerate(description):
        col = df.iloc[:, i]
        if col.dtype != object:
            continue
        if d[1] in _DATETIME_TYPES:
            df.isetitem(i, pd.to_datetime(col, errors="coerce"))
        elif d[1] in _NUMERIC_TYPES and col.isna().all():
            df.isetitem(i, col.astype("float64"))
    return df


def records(df: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Rows of `df` as tuples of Python values, NaN/NaT as None."""
    if not len(df):
        return []
    values = df.astype(object).where(df.notna(), None)
    return list(values.itertuples(index=False, name=None))


def sql_type(series: pd.Series[Any], is_key: bool) -> str:
    kind = series.dtype
    if pd.api.types.is_bool_dtype(kind):
        return "TINYINT(1)"
    if pd.api.types.is_unsigned_integer_dtype(kind):
        return "BIGINT UNSIGNED"
    if pd.api.types.is_integer_dtype(kind):
        return "BIGINT"
    if pd.api.types.is_float_dtype(kind):
        return "DOUBLE"
    if pd.api.types.is_datetime64_any_dtype(kind):
        return "DATETIME(6)"
    if pd.api.types.is_timedelta64_dtype(kind):
        return "TIME(6)"
    if isinstance(kind, pd.StringDtype):
        return "VARCHAR(255)" if is_key else "TEXT"
    sample = series.dropna()
    first = sample.iloc[0] if len(sample) else None
    if isinstance(first, bool):
        return "TINYINT(1)"
    if isinstance(first, int):
        return "BIGINT"
    if isinstance(first, float):
        return "DOUBLE"
    if isinstance(first, decimal.Decimal):
        scale = 0
        for value in sample:
            exponent = value.as_tuple().exponent if isinstance(value, decimal.Decimal) else 0
            if isinstance(exponent, int):
                scale = max(scale, -exponent)
        return f"DECIMAL(65, {min(scale, 30)})"
    if isinstance(first, dt.datetime):
        return "DATETIME(6)"
    if isinstance(first, dt.date):
        return "DATE"
    if isinstance(first, (bytes, bytearray, memoryview)):
        return "LONGBLOB"
    return "VARCHAR(255)" if is_key else "TEXT"


def create_table_sql(target: str, df: pd.DataFrame, key: str | None) -> str:
    cols = []
    for i, name in enumerate(map(str, df.columns)):
        is_key = name == key
        null = " NOT NULL" if is_key else ""
        cols.append(f"{quote_ident(name)} {sql_type(df.iloc[:, i], is_key)}{null}")
    if key:
        if key not in map(str, df.columns):
            raise ConnectorConfigError(f"key {key!r} is not a column of the rows written to {target}")
        cols.append(f"PRIMARY KEY ({quote_ident(key)})")
    return f"CREATE TABLE IF NOT EXISTS {quote_ident(target)} ({', '.join(cols)}) ENGINE=InnoDB"
