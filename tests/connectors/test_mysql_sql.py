"""SQL text and type mapping of the MYSQL connector; pure functions, no server needed."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pandas as pd
import pytest

from connectors._mysql_sql import create_table_sql, is_query, quote_ident, records, split_table


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("orders", "`orders`"),
        ("sales.orders", "`sales`.`orders`"),
        ("`sales`.`orders`", "`sales`.`orders`"),
        ("odd`name", "`odd``name`"),
        ("`a.b`", "`a.b`"),
    ],
)
def test_quote_ident(name: str, quoted: str) -> None:
    assert quote_ident(name) == quoted


@pytest.mark.parametrize(
    ("target", "query"),
    [
        ("orders", False),
        ("selections", False),
        ("with_data", False),
        ("db.t", False),
        ("SELECT * FROM t", True),
        ("  select 1", True),
        ("WITH x AS (SELECT 1) SELECT * FROM x", True),
        ("(SELECT 1)", True),
    ],
)
def test_is_query(target: str, query: bool) -> None:
    assert is_query(target) is query


def test_split_table() -> None:
    assert split_table("t") == (None, "t")
    assert split_table("db.t") == ("db", "t")


def test_create_table_sql_maps_dtypes() -> None:
    df = pd.DataFrame(
        {
            "id": np.arange(2, dtype="int64"),
            "u": np.arange(2, dtype="uint32"),
            "x": [0.5, 1.5],
            "ok": [True, False],
            "at": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "price": [decimal.Decimal("1.234"), decimal.Decimal("2")],
            "day": [dt.date(2024, 1, 1), None],
            "s": ["a", "b"],
            "raw": [b"x", None],
        }
    )
    sql = create_table_sql("db.t", df, "s")
    assert sql.startswith("CREATE TABLE IF NOT EXISTS `db`.`t` (")
    for part in [
        "`id` BIGINT",
        "`u` BIGINT UNSIGNED",
        "`x` DOUBLE",
        "`ok` TINYINT(1)",
        "`at` DATETIME(6)",
        "`price` DECIMAL(65, 3)",
        "`day` DATE",
        "`s` VARCHAR(255) NOT NULL",
        "`raw` LONGBLOB",
        "PRIMARY KEY (`s`)",
    ]:
        assert part in sql, part


def test_records_turn_missing_values_into_none() -> None:
    df = pd.DataFrame({"a": [1, 2], "b": [0.5, np.nan], "c": pd.to_datetime(["2024-01-01", None])})
    rows = records(df)
    assert rows[0][:2] == (1, 0.5) and type(rows[0][0]) is int
    assert rows[1][1] is None and rows[1][2] is None
