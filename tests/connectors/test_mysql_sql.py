"""The MYSQL connector without a server: SQL text, types, INSERT rendering, commit plans, error scrubbing."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pymysql.constants import FIELD_TYPE, FLAG

from connectors._mysql_bulk import connection_string
from connectors._mysql_errors import ErrorContext, scrub
from connectors._mysql_insert import insert_statements, make_escape
from connectors._mysql_read import schema_diff
from connectors._mysql_settings import DEFAULT_PAGE_ROWS, ConnectorSettings
from connectors._mysql_sink_sql import TargetInfo, apply_statements, upsert_suffix
from connectors._mysql_sql import (
    create_table_sql,
    is_query,
    quote_ident,
    render,
    sibling_table,
    split_table,
    sql_literal,
)
from connectors._mysql_types import Column, arrow_from_rows, to_pandas
from connectors.base import ReadOptions, WriteOptions
from connectors.errors import (
    AuthenticationFailed,
    BatchDecodeError,
    ConnectorConfigError,
    RequestRejected,
    SourceUnavailable,
    TargetNotFound,
)


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


def test_split_and_sibling_tables() -> None:
    assert split_table("t") == (None, "t")
    assert split_table("db.t") == ("db", "t")
    assert sibling_table("db.orders", "_atom_stage_", "abcd1234") == "`db`.`_atom_stage_orders_abcd1234`"
    long = sibling_table("x" * 64, "_atom_stage_", "abcd1234")
    assert len(long.strip("`")) == 64 and long.endswith("_abcd1234`")


def test_create_table_sql_maps_dtypes() -> None:
    df = pd.DataFrame(
        {
            "id": np.arange(2, dtype="int64"),
            "u": np.arange(2, dtype="uint32"),
            "x": [0.5, 1.5],
            "f32": np.array([0.5, 1.5], dtype="float32"),
            "ok": [True, False],
            "n": pd.array([1, None], dtype="Int64"),
            "at": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "price": [decimal.Decimal("1.234"), decimal.Decimal("2")],
            "exact": pd.array([decimal.Decimal("1.5"), None], dtype=pd.ArrowDtype(pa.decimal128(10, 3))),
            "day": [dt.date(2024, 1, 1), None],
            "s": ["a", "b"],
            "raw": [b"x", None],
        }
    )
    sql = create_table_sql("db.t", df, ["s", "id"], run_column="_atom_run")
    assert sql.startswith("CREATE TABLE `db`.`t` (")
    for part in [
        "`id` BIGINT NOT NULL",
        "`u` BIGINT UNSIGNED",
        "`x` DOUBLE",
        "`f32` FLOAT",
        "`ok` TINYINT(1)",
        "`n` BIGINT",
        "`at` DATETIME(6)",
        "`price` DECIMAL(65, 3)",
        "`exact` DECIMAL(10, 3)",
        "`day` DATE",
        "`s` VARCHAR(255) NOT NULL",
        "`raw` LONGBLOB",
        "`_atom_run` VARCHAR(128) NULL",
        "PRIMARY KEY (`s`, `id`)",
        "INDEX `_atom_run` (`_atom_run`)",
    ]:
        assert part in sql, part
    with pytest.raises(ConnectorConfigError, match="key nope is not a column"):
        create_table_sql("t", df, "nope")


def test_sql_literals_are_safe() -> None:
    assert sql_literal(5) == "5" and sql_literal(np.int64(-3)) == "-3" and sql_literal(True) == "1"
    assert sql_literal(0.1) == "0.1" and sql_literal(decimal.Decimal("1.50")) == "'1.50'"
    assert sql_literal(dt.datetime(2024, 1, 2, 3, 4, 5, 6)) == "'2024-01-02 03:04:05.000006'"
    assert sql_literal(pd.Timestamp("2024-01-02")) == "'2024-01-02 00:00:00.000000'"
    assert sql_literal(dt.date(2024, 1, 2)) == "'2024-01-02'"
    assert sql_literal("a'b\\") == "_utf8mb4 X'6127625c'"  # no quoting rules involved at all
    assert sql_literal(b"\x00") == "X'00'"
    for bad in (None, float("nan"), [1]):
        with pytest.raises(ConnectorConfigError):
            sql_literal(bad)
    assert render("SELECT * FROM (SELECT '%%') q WHERE k > %s", ("x",)) == (
        "SELECT * FROM (SELECT '%') q WHERE k > _utf8mb4 X'78'"
    )
    assert render("SELECT '%%'", ()) == "SELECT '%'"


def _column(code: int, flags: int = 0, charsetnr: int = 45, length: int = 0, scale: int = 0) -> Column:
    return Column("c", code, flags, charsetnr, length, scale)


def test_column_types_map_to_one_arrow_schema() -> None:
    assert _column(FIELD_TYPE.TINY).arrow_type == pa.int64()
    assert _column(FIELD_TYPE.LONGLONG, FLAG.UNSIGNED).arrow_type == pa.uint64()
    assert _column(FIELD_TYPE.LONG, FLAG.UNSIGNED).arrow_type == pa.int64()
    assert _column(FIELD_TYPE.FLOAT).arrow_type == pa.float32()
    dec = _column(FIELD_TYPE.NEWDECIMAL, length=14, scale=4)  # DECIMAL(12,4): sign and point in length
    assert dec.arrow_type == pa.decimal128(12, 4) and dec.bulk_ok
    assert _column(FIELD_TYPE.NEWDECIMAL, FLAG.UNSIGNED, length=13, scale=4).arrow_type == pa.decimal128(
        12, 4
    )
    assert _column(FIELD_TYPE.NEWDECIMAL, length=66, scale=0).arrow_type == pa.decimal256(65, 0)
    assert not _column(FIELD_TYPE.NEWDECIMAL, length=31, scale=10).bulk_ok  # 29 digits
    assert not _column(FIELD_TYPE.NEWDECIMAL, length=22, scale=15).bulk_ok  # scale > 10
    assert _column(FIELD_TYPE.DATETIME).arrow_type == pa.timestamp("us")
    assert _column(FIELD_TYPE.DATE).arrow_type == pa.date32()
    assert _column(FIELD_TYPE.TIME).arrow_type == pa.duration("us") and not _column(FIELD_TYPE.TIME).bulk_ok
    assert _column(FIELD_TYPE.VAR_STRING).arrow_type == pa.string()
    assert _column(FIELD_TYPE.BLOB, charsetnr=63).arrow_type == pa.binary()
    assert _column(FIELD_TYPE.BLOB, charsetnr=45).arrow_type == pa.string()  # TEXT
    assert _column(FIELD_TYPE.JSON, charsetnr=63).arrow_type == pa.string()
    assert _column(FIELD_TYPE.BIT).arrow_type == pa.binary()


def test_rows_become_frames_with_stable_dtypes() -> None:
    columns = [
        Column("id", FIELD_TYPE.LONGLONG, FLAG.NOT_NULL),
        Column("n", FIELD_TYPE.LONG),
        Column("at", FIELD_TYPE.DATETIME),
        Column("price", FIELD_TYPE.NEWDECIMAL, length=6, scale=2),
    ]
    zero_date = "0000-00-00 00:00:00"  # what pymysql hands over for zero dates: becomes NULL
    table = arrow_from_rows([(1, 2, zero_date, decimal.Decimal("1.25")), (2, 3, None, None)], columns)
    df = to_pandas(table, columns)
    assert str(df["id"].dtype) == "int64" and str(df["n"].dtype) == "Int64"  # Int64 even without NULLs
    assert df["at"].isna().all() and df["price"].dtype == pd.ArrowDtype(pa.decimal128(4, 2))
    assert to_pandas(table, columns, "float")["price"].iloc[0] == 1.25
    assert to_pandas(table, columns, "object")["price"].iloc[0] == decimal.Decimal("1.25")
    empty = to_pandas(arrow_from_rows([], columns), columns)
    assert list(empty.dtypes.astype(str)) == list(df.dtypes.astype(str))


def test_insert_statements_escape_and_split() -> None:
    df = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "s": ["it's", "a\\b", None],
            "x": [0.5, np.nan, -0.0],
            "ok": [True, False, True],
            "at": pd.to_datetime(["2024-01-01 00:00:00.000001", None, "2024-01-02 00:00:00.000000"]),
            "raw": [b"\x00'", None, b""],
        }
    )
    [one] = insert_statements(df, "`t`", max_bytes=1 << 20, backslashes=True, escape=make_escape(True))
    assert one.decode() == (
        "INSERT INTO `t` (`id`, `s`, `x`, `ok`, `at`, `raw`) VALUES "
        "(1,'it''s',0.5,1,'2024-01-01 00:00:00.000001',X'0027'),"
        "(2,'a\\\\b',NULL,0,NULL,NULL),"
        "(3,NULL,-0,1,'2024-01-02 00:00:00.000000',X'')"
    )
    [plain] = insert_statements(
        df[["s"]], "`t`", max_bytes=1 << 20, backslashes=False, escape=make_escape(False)
    )
    assert b"'a\\b'" in plain  # NO_BACKSLASH_ESCAPES: only quotes are doubled
    parts = list(
        insert_statements(
            df[["id"]],
            "`t`",
            extra={"_atom_run": "'r1'"},
            suffix=" ON DUPLICATE KEY UPDATE `id` = VALUES(`id`)",
            max_bytes=20,
            backslashes=True,
            escape=make_escape(True),
        )
    )
    assert [p.split(b" VALUES ")[1].split(b" ON ")[0] for p in parts] == [b"(1,'r1'),(2,'r1')", b"(3,'r1')"]
    assert all(p.endswith(b"= VALUES(`id`)") for p in parts)


def test_commit_plans() -> None:
    old, stage = "`_atom_old_t_x`", "`_atom_stage_t_x`"
    existing = TargetInfo(exists=True, columns=["id", "v"], unique=[("id",)])

    def plan(info: TargetInfo, **opts: object):  # type: ignore[no-untyped-def]
        return apply_statements(
            target="t",
            stage=stage,
            columns=["id", "v"],
            options=WriteOptions(**opts),  # type: ignore[arg-type]
            info=info,
            old=old,
        )

    new = plan(TargetInfo(exists=False), mode="append")
    assert new.rename == f"RENAME TABLE {stage} TO `t`" and new.transaction  # fallback: a concurrent create
    swap = plan(existing, mode="replace")
    assert swap.rename == f"RENAME TABLE `t` TO {old}, {stage} TO `t`" and swap.after == [
        f"DROP TABLE IF EXISTS {old}"
    ]
    assert [s for s, _ in swap.transaction] == [
        "DELETE FROM `t`",
        f"INSERT INTO `t` (`id`, `v`) SELECT `id`, `v` FROM {stage}",
    ]
    assert plan(TargetInfo(True, ["id", "v"], triggers=True), mode="replace").rename is None
    run = plan(existing, mode="append", run_key="r1")
    assert run.before == [
        "ALTER TABLE `t` ADD COLUMN `_atom_run` VARCHAR(128) NULL, ADD INDEX `_atom_run` (`_atom_run`)"
    ]
    assert run.transaction[0] == ("DELETE FROM `t` WHERE `_atom_run` = %s", ("r1",))
    assert "`_atom_run`) SELECT" in run.transaction[1][0]
    upsert = plan(existing, mode="upsert", key=("id",))
    assert upsert.transaction[-1][0].endswith(" ON DUPLICATE KEY UPDATE `v` = VALUES(`v`)")
    assert upsert_suffix(["id"], ["id"]) == " ON DUPLICATE KEY UPDATE `id` = VALUES(`id`)"
    empty = apply_statements(
        target="t", stage=None, columns=[], options=WriteOptions(mode="replace"), info=existing, old=old
    )
    assert empty.transaction == [("DELETE FROM `t`", None)]


def test_connection_string_encodes_credentials() -> None:
    url = connection_string(
        user="a@b", password="p:/@%?#", host="db.local", port=3307, database="d b", unix_socket=None
    )
    assert url == "mysql://a%40b:p%3A%2F%40%25%3F%23@db.local:3307/d%20b?prefer_socket=false"
    sock = connection_string(user="u", password="", host="h", port=1, database="d", unix_socket="/run/m.sock")
    assert sock == "mysql://u@localhost/d?prefer_socket=false&socket=%2Frun%2Fm.sock"
    assert "[::1]:3306" in connection_string(
        user="u", password="", host="::1", port=3306, database="d", unix_socket=None
    )


def test_connectorx_errors_are_scrubbed_and_typed() -> None:
    ctx = ErrorContext(user="bob", host="db", port=3306, database="d")
    secret = "p:/@ss"
    leak = f"failed for mysql://bob:p%3A%2F%40ss@db:3306/d and {secret}"
    assert secret not in scrub(leak, [secret]) and "%3A%2F%40ss" not in scrub(leak, [secret])
    assert "mysql://bob:***@db" in scrub("mysql://bob:other@db:1/x", [])
    err = ctx.from_connectorx(
        RuntimeError(leak + " MySqlError { ERROR 1045 (28000): Access denied }"), "reading", "t", [secret]
    )
    assert isinstance(err, AuthenticationFailed) and secret not in str(err)
    err = ctx.from_connectorx(
        RuntimeError("MySqlError { ERROR 1146 (42S02): Table 'd.t' doesn't exist }"), "reading", "t", []
    )
    assert isinstance(err, TargetNotFound) and "MySQL table t does not exist" in str(err)
    err = ctx.from_connectorx(RuntimeError("IoError { server disconnected }"), "reading", "t", [])
    assert isinstance(err, SourceUnavailable)
    err = ctx.from_connectorx(BaseException("Could not retrieve Decimal " + leak), "reading", "t", [secret])
    assert isinstance(err, BatchDecodeError) and "engine='pymysql'" in str(err) and secret not in str(err)


def test_schema_diff_and_settings() -> None:
    before = [("id", "int64"), ("a", "string"), ("b", "double")]
    now = [("id", "int64"), ("b", "string"), ("c", "int64")]
    assert schema_diff(before, now) == "added: c; dropped: a; retyped: b double -> string"
    settings = ConnectorSettings.from_conf({"engine": "PyMySQL", "partitions": "3", "decimal": "float"})
    read = settings.read(ReadOptions(connect_read_num=50))
    assert (read.engine, read.partitions, read.decimals, read.page_rows, read.fetch_rows) == (
        "pymysql",
        3,
        "float",
        DEFAULT_PAGE_ROWS,
        50,
    )
    with pytest.raises(ConnectorConfigError, match="decimal='exact'"):
        ConnectorSettings.from_conf({"decimal": "exact"})
    with pytest.raises(ConnectorConfigError, match="not a whole number"):
        ConnectorSettings.from_conf({"write_batch_rows": "many"})


def test_values_mysql_cannot_store_are_refused_clearly() -> None:
    df = pd.DataFrame({"id": [1], "meta": [{"a": 1}]})
    with pytest.raises(RequestRejected, match="column meta holds values MySQL cannot store"):
        list(insert_statements(df, "`t`", max_bytes=1 << 20, backslashes=True, escape=make_escape(True)))
