"""SQL text of the MYSQL connector: identifiers, literals, and table DDL from DataFrame dtypes.

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

from connectors.errors import ConnectorConfigError


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


def _arrow_sql_type(kind: Any, is_key: bool) -> str | None:
    """DDL type for a pandas ArrowDtype's pyarrow type (None: not an Arrow dtype we know)."""
    import pyarrow as pa  # deferred: only ArrowDtype columns need it

    if pa.types.is_boolean(kind):
        return "TINYINT(1)"
    if pa.types.is_unsigned_integer(kind):
        return "BIGINT UNSIGNED"
    if pa.types.is_integer(kind):
        return "BIGINT"
    if pa.types.is_float32(kind):
        return "FLOAT"
    if pa.types.is_floating(kind):
        return "DOUBLE"
    if pa.types.is_decimal(kind):
        return f"DECIMAL({min(kind.precision, 65)}, {min(kind.scale, 30)})"
    if pa.types.is_timestamp(kind):
        return "DATETIME(6)"
    if pa.types.is_date(kind):
        return "DATE"
    if pa.types.is_duration(kind):
        return "TIME(6)"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "VARCHAR(255)" if is_key else "TEXT"
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return "VARBINARY(255)" if is_key else "LONGBLOB"
    return None


def sql_type(series: pd.Series[Any], is_key: bool) -> str:
    """The column type a created table gets for a DataFrame column (keys: indexable types)."""
    kind = series.dtype
    if isinstance(kind, pd.ArrowDtype):
        mapped = _arrow_sql_type(kind.pyarrow_dtype, is_key)
        if mapped:
            return mapped
    if pd.api.types.is_bool_dtype(kind):
        return "TINYINT(1)"
    if pd.api.types.is_unsigned_integer_dtype(kind):
        return "BIGINT UNSIGNED"
    if pd.api.types.is_integer_dtype(kind):
        return "BIGINT"
    if pd.api.types.is_float_dtype(kind):
        return "FLOAT" if kind == np.float32 else "DOUBLE"
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
    if isinstance(first, dt.timedelta):
        return "TIME(6)"
    if isinstance(first, (bytes, bytearray, memoryview)):
        return "VARBINARY(255)" if is_key else "LONGBLOB"
    return "VARCHAR(255)" if is_key else "TEXT"


def key_columns(key: str | Sequence[str] | None) -> tuple[str, ...]:
    """Key column names from the loose forms callers use."""
    if not key:
        return ()
    return (key,) if isinstance(key, str) else tuple(key)


def create_table_sql(
    target: str, df: pd.DataFrame, key: str | Sequence[str] | None, *, run_column: str | None = None
) -> str:
    """`CREATE TABLE` for `df`'s columns; `key` columns form the primary key.

    Args:
        target: the table (`t` or `db.t`).
        df: the rows; only its dtypes are used.
        key: primary-key column(s) (NOT NULL, indexable types).
        run_column: add this VARCHAR(128) run-key column with an index (run-keyed writes).
    """
    keys = key_columns(key)
    names = list(map(str, df.columns))
    missing = [k for k in keys if k not in names]
    if missing:
        raise ConnectorConfigError(
            f"key {', '.join(missing)} is not a column of the rows written to {target}: "
            f"use one of {', '.join(names)}"
        )
    cols = []
    for i, name in enumerate(names):
        if name == run_column:
            continue
        is_key = name in keys
        null = " NOT NULL" if is_key else ""
        cols.append(f"{quote_ident(name)} {sql_type(df.iloc[:, i], is_key)}{null}")
    if run_column:
        cols.append(f"{quote_ident(run_column)} VARCHAR(128) NULL")
    if keys:
        cols.append(f"PRIMARY KEY ({', '.join(map(quote_ident, keys))})")
    if run_column:
        cols.append(f"INDEX {quote_ident(run_column)} ({quote_ident(run_column)})")
    return f"CREATE TABLE {quote_ident(target)} ({', '.join(cols)}) ENGINE=InnoDB"


def sibling_table(target: str, prefix: str, suffix: str) -> str:
    """`db.<prefix><table>_<suffix>` beside `target`, cut to MySQL's 64-character identifiers."""
    schema, name = split_table(target)
    room = 64 - len(prefix) - len(suffix) - 1
    sibling = f"{prefix}{name[:room]}_{suffix}"
    return f"{quote_ident(schema)}.{quote_ident(sibling)}" if schema else quote_ident(sibling)


def sql_literal(value: Any) -> str:
    """A value as an SQL literal, for statements that cannot take parameters (connectorx).

    Strings become `_utf8mb4 X'..'` (no escaping, compared in the column's collation), bytes
    `X'..'`, temporal values quoted ISO text. Other types are refused.

    Raises:
        ConnectorConfigError: a value that has no safe literal form here.
    """
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and np.isfinite(value):
        return repr(value)
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return f"'{value}'"
    if isinstance(value, dt.datetime):
        return f"'{value.replace(tzinfo=None).isoformat(sep=' ', timespec='microseconds')}'"
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'"
    if isinstance(value, str):
        return f"_utf8mb4 X'{value.encode('utf-8').hex()}'"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"X'{bytes(value).hex()}'"
    raise ConnectorConfigError(f"cannot page by a key value of type {type(value).__name__} ({value!r})")


def render(template: str, params: Sequence[Any]) -> str:
    """`template` (pymysql `%s` style, literal `%` doubled) with `params` inlined as literals."""
    return template % tuple(sql_literal(p) for p in params) if params else template.replace("%%", "%")
