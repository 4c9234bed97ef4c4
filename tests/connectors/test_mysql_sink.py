"""MYSQL sinks against a real MariaDB: staging, modes, run keys, permissions, value rendering."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from connectors import ConnectionConfig, ReadOptions, open_connector
from connectors.base import RUN_COLUMN, WriteOptions
from connectors.errors import ConnectorConfigError, PermissionDenied, RequestRejected
from connectors.mysql import MySQLConnector
from tests.connectors.conformance import assert_same_rows, collect, joined, sample_frame
from tests.connectors.conftest import mysql_config_for

pytestmark = pytest.mark.mysql

SQL = Callable[..., list[tuple[Any, ...]]]


@pytest.fixture
def mysql(mysql_config: ConnectionConfig) -> MySQLConnector:
    conn = open_connector(mysql_config)
    assert isinstance(conn, MySQLConnector)
    return conn


def stages(sql: SQL, table: str) -> list[str]:
    return [r[0] for r in sql("SHOW TABLES LIKE %s", (f"\\_atom\\_stage\\_{table}%",))]


async def read_back(conn: MySQLConnector, table: str) -> pd.DataFrame:
    return joined(await collect(conn.read(table, ReadOptions(key="id"))))


async def test_new_table_from_dtypes_roundtrips(mysql: MySQLConnector, table_name: str, sql: SQL) -> None:
    df = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "score": [0.5, None, 2.0],
            "small": np.array([0.5, 1.5, -2.0], dtype="float32"),
            "ok": [True, False, True],
            "maybe": pd.array([1, None, 3], dtype="Int64"),
            "at": pd.to_datetime(["2024-01-01 00:00:00.000001", None, "2024-12-31 23:59:59.000000"]),
            "amount": [decimal.Decimal("1.50"), None, decimal.Decimal("-2.25")],
            "price": pd.array(
                [decimal.Decimal("1.2345"), None, decimal.Decimal("0")],
                dtype=pd.ArrowDtype(pa.decimal128(9, 4)),
            ),
            "label": ["a", None, "c"],
            "blob": [b"\x00", b"", None],
            "day": [dt.date(2024, 1, 2), None, dt.date(1999, 12, 31)],
        }
    )
    async with mysql:
        assert await mysql.write(df, table_name, key="id") == 3
        back = await read_back(mysql, table_name)
    types = {row[0]: row[1] for row in sql(f"SHOW COLUMNS FROM `{table_name}`")}
    assert types == {
        "id": "bigint(20)",
        "score": "double",
        "small": "float",
        "ok": "tinyint(1)",
        "maybe": "bigint(20)",
        "at": "datetime(6)",
        "amount": "decimal(65,2)",
        "price": "decimal(9,4)",
        "label": "text",
        "blob": "longblob",
        "day": "date",
    }
    assert sql(f"SHOW KEYS FROM `{table_name}` WHERE Key_name = 'PRIMARY'")[0][4] == "id"
    assert list(back["id"]) == [1, 2, 3] and np.isnan(back["score"].iloc[1]) and back["small"].iloc[2] == -2.0
    assert list(back["ok"]) == [1, 0, 1] and back["maybe"].iloc[1] is pd.NA
    assert back["at"].iloc[0] == pd.Timestamp("2024-01-01 00:00:00.000001") and pd.isna(back["at"].iloc[1])
    assert back["amount"].iloc[0] == decimal.Decimal("1.50") and pd.isna(back["amount"].iloc[1])
    assert back["price"].dtype == pd.ArrowDtype(pa.decimal128(9, 4)) and back["price"].iloc[
        0
    ] == decimal.Decimal("1.2345")
    assert back["label"].iloc[2] == "c" and pd.isna(back["label"].iloc[1])
    assert back["blob"].iloc[0] == b"\x00" and back["blob"].iloc[2] is None
    assert back["day"].iloc[2] == pd.Timestamp("1999-12-31") and pd.isna(back["day"].iloc[1])
    assert stages(sql, table_name) == []


@pytest.mark.parametrize("no_backslash_escapes", [False, True])
async def test_strings_and_odd_values_survive(table_name: str, sql: SQL, no_backslash_escapes: bool) -> None:
    init = (
        "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')" if no_backslash_escapes else None
    )
    conf = {"init_command": init} if init else {}
    texts = [
        "it's",
        "back\\slash",
        "\\'; DROP TABLE x; --",
        'q"uote',
        "new\nline\ttab",
        "nul\x00byte",
        "ä€😀",
        "",
        None,
    ]
    df = pd.DataFrame(
        {
            "id": range(len(texts)),
            "s": texts,
            "raw": [t.encode() if t is not None else None for t in texts],
            "when": pd.to_datetime(["2024-06-01 12:00"] * len(texts)).tz_localize("Europe/Berlin"),
        }
    )
    async with open_connector(mysql_config_for(source_conf=conf)) as conn:
        await conn.write(df, table_name, key="id")
        back = await read_back(conn, table_name)  # type: ignore[arg-type]
    assert back["s"].tolist()[:-1] == texts[:-1] and pd.isna(back["s"].iloc[-1])
    assert back["raw"].tolist() == df["raw"].tolist()
    assert (back["when"] == pd.Timestamp("2024-06-01 10:00")).all()  # tz-aware values are stored as UTC


async def test_infinite_floats_are_refused(mysql: MySQLConnector, table_name: str, sql: SQL) -> None:
    async with mysql:
        with pytest.raises(RequestRejected, match="column x holds infinite values"):
            await mysql.write(pd.DataFrame({"id": [1, 2], "x": [1.0, np.inf]}), table_name, key="id")
    assert stages(sql, table_name) == [] and sql("SHOW TABLES LIKE %s", (table_name,)) == []


async def test_nothing_is_visible_before_commit_and_the_stage_goes(
    mysql: MySQLConnector, table_name: str, sql: SQL
) -> None:
    async with mysql:
        await mysql.write(sample_frame(10), table_name, key="id")
        sink = mysql.sink(table_name, WriteOptions(mode="append"))
        async with sink:
            await sink.write(sample_frame(5, start=100))
            [stage] = stages(sql, table_name)
            assert stage.startswith(f"_atom_stage_{table_name}_") and len(stage) <= 64
            assert sql(f"SELECT COUNT(*) FROM `{table_name}`") == [(10,)]
            assert sql(f"SELECT COUNT(*) FROM `{stage}`") == [(5,)]
        assert sql(f"SELECT COUNT(*) FROM `{table_name}`") == [(15,)]
    assert stages(sql, table_name) == []


async def test_an_unfinished_sink_is_dropped_when_the_connector_closes(
    mysql: MySQLConnector, table_name: str, sql: SQL
) -> None:
    async with mysql:
        sink = mysql.sink(table_name, WriteOptions(mode="replace", key=("id",)))
        await sink.write(sample_frame(5))
        assert len(stages(sql, table_name)) == 1
    assert stages(sql, table_name) == [] and sql("SHOW TABLES LIKE %s", (table_name,)) == []


async def test_failed_commit_leaves_the_target_unchanged(
    mysql: MySQLConnector, table_name: str, sql: SQL
) -> None:
    async with mysql:
        await mysql.write(sample_frame(10), table_name, key="id")
        with pytest.raises(RequestRejected, match="Duplicate entry"):
            await mysql.write(sample_frame(3, start=8), table_name)  # ids 8, 9 exist already
        assert sql(f"SELECT COUNT(*) FROM `{table_name}`") == [(10,)]
        bad = sample_frame(30, start=100)
        bad.loc[20, "id"] = 105  # a duplicate inside the staged rows
        with pytest.raises(RequestRejected, match="Duplicate entry"):
            await mysql.write(bad, table_name, mode="replace")
        assert_same_rows(await read_back(mysql, table_name), sample_frame(10))
        assert await mysql.write(sample_frame(5, start=200), table_name) == 5  # the connection still works
    assert stages(sql, table_name) == []


async def test_composite_key_upsert_and_refusal_without_unique_key(
    mysql: MySQLConnector, table_name: str, sql: SQL
) -> None:
    first = pd.DataFrame({"a": [1, 1, 2], "b": ["x", "y", "x"], "v": [1.0, 2.0, 3.0]})
    async with mysql:
        await mysql.write(first, table_name, key=["a", "b"])
        change = pd.DataFrame({"a": [1, 3], "b": ["y", "z"], "v": [20.0, 30.0]})
        assert await mysql.write(change, table_name, mode="upsert", key=["a", "b"]) == 2
        assert sorted(sql(f"SELECT a, b, v FROM `{table_name}`")) == [
            (1, "x", 1.0),
            (1, "y", 20.0),
            (2, "x", 3.0),
            (3, "z", 30.0),
        ]
        with pytest.raises(RequestRejected, match=r"no PRIMARY or UNIQUE key on \(v\).*ADD UNIQUE"):
            await mysql.write(change, table_name, mode="upsert", key="v")
    assert stages(sql, table_name) == []


async def test_run_key_column_is_added_to_an_existing_table(
    mysql: MySQLConnector, table_name: str, sql: SQL
) -> None:
    sql(f"CREATE TABLE `{table_name}` (id BIGINT PRIMARY KEY, value DOUBLE, name VARCHAR(20))")
    sql(f"INSERT INTO `{table_name}` VALUES (-1, 0, 'before')")
    async with mysql:
        for _ in range(2):  # the run is retried: one copy stays
            assert await mysql.write(sample_frame(50), table_name, run_key="run-7") == 50
        got = await read_back(mysql, table_name)
    assert len(got) == 51 and (got[RUN_COLUMN].iloc[1:] == "run-7").all() and pd.isna(got[RUN_COLUMN].iloc[0])
    [(kind,)] = sql(
        "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = %s AND COLUMN_NAME = %s",
        (table_name, RUN_COLUMN),
    )
    assert kind == "varchar(128)"
    assert sql(f"SHOW INDEX FROM `{table_name}` WHERE Column_name = %s", (RUN_COLUMN,))


async def test_replace_keeps_triggers_by_replacing_rows_in_a_transaction(
    mysql: MySQLConnector, table_name: str, sql: SQL
) -> None:
    sql(f"CREATE TABLE `{table_name}` (id BIGINT PRIMARY KEY, value DOUBLE, name VARCHAR(20))")
    sql(
        f"CREATE TRIGGER `{table_name}_tr` BEFORE INSERT ON `{table_name}` "
        "FOR EACH ROW SET NEW.value = NEW.value + 1"
    )
    async with mysql:
        await mysql.write(sample_frame(5), table_name, mode="replace")
    assert sql("SHOW TRIGGERS LIKE %s", (table_name,))  # still there: no RENAME swap
    assert [r[0] for r in sql(f"SELECT value FROM `{table_name}` ORDER BY id")] == [1.0, 1.25, 1.5, 1.75, 2.0]


async def test_replace_without_rows_empties_the_table(
    mysql: MySQLConnector, table_name: str, sql: SQL
) -> None:
    async with mysql:
        await mysql.write(sample_frame(5), table_name, key="id")
        async with mysql.sink(table_name, WriteOptions(mode="replace")):
            pass
        assert sql(f"SELECT COUNT(*) FROM `{table_name}`") == [(0,)]
        async with mysql.sink(table_name + "_never", WriteOptions(mode="replace")):
            pass  # nothing written to a missing table: nothing created
    assert sql("SHOW TABLES LIKE %s", (table_name + "_never",)) == []


async def test_batches_must_keep_their_columns(mysql: MySQLConnector, table_name: str) -> None:
    async with mysql:
        sink = mysql.sink(table_name, WriteOptions(key=("id",)))
        async with sink:
            await sink.write(sample_frame(3))
            with pytest.raises(ConnectorConfigError, match="give every batch the same columns"):
                await sink.write(sample_frame(3, start=3).drop(columns=["name"]))
        with pytest.raises(ConnectorConfigError, match="already committed"):
            await sink.write(sample_frame(1))
        with pytest.raises(RequestRejected, match="columns extra are not in MySQL table"):
            await mysql.write(sample_frame(2, start=10).assign(extra=1), table_name)
        with pytest.raises(ConnectorConfigError, match="cannot write to a query"):
            mysql.sink(f"SELECT * FROM {table_name}")


@pytest.fixture
def limited_user(sql: SQL, mysql_config: ConnectionConfig) -> Iterator[Callable[[str], ConnectionConfig]]:
    """Make an account with the given grants on the test database; dropped afterwards."""
    user, password = f"atom_u_{uuid.uuid4().hex[:6]}", "pw'" + uuid.uuid4().hex[:8] + "@:/%"
    sql(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
    sql(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY %s", (password,))

    def grant(statement: str) -> ConnectionConfig:
        for host in ("%", "localhost"):
            sql(statement.format(user=f"'{user}'@'{host}'", db=mysql_config.space))
        return replace(mysql_config, account=user, password=password)

    yield grant
    sql(f"DROP USER IF EXISTS '{user}'@'%'")
    sql(f"DROP USER IF EXISTS '{user}'@'localhost'")


async def test_read_only_user_is_denied_before_anything_is_created(
    table_name: str, sql: SQL, limited_user: Callable[[str], ConnectionConfig]
) -> None:
    sql(f"CREATE TABLE `{table_name}` (id BIGINT PRIMARY KEY, value DOUBLE, name VARCHAR(20))")
    config = limited_user("GRANT SELECT ON `{db}`.* TO {user}")
    async with open_connector(config) as conn:
        assert joined(
            await collect(conn.read(table_name))
        ).empty  # reading works (connectorx, special password)
        for mode in ("append", "replace", "upsert"):
            with pytest.raises(PermissionDenied, match=config.account) as info:
                await conn.write(sample_frame(3), table_name, mode=mode, key="id")
            assert config.password not in str(info.value)
        with pytest.raises(PermissionDenied):
            await conn.write(sample_frame(3), table_name + "_new", key="id")
    assert stages(sql, table_name) == [] and sql("SHOW TABLES LIKE %s", (table_name + "_new",)) == []


async def test_insert_only_user_can_append_but_not_replace(
    table_name: str, sql: SQL, limited_user: Callable[[str], ConnectionConfig]
) -> None:
    sql(f"CREATE TABLE `{table_name}` (id BIGINT PRIMARY KEY, value DOUBLE, name VARCHAR(20))")
    config = limited_user("GRANT SELECT, INSERT, CREATE, DROP ON `{db}`.* TO {user}")
    async with open_connector(config) as conn:
        assert await conn.write(sample_frame(3), table_name) == 3
        with pytest.raises(PermissionDenied, match="DELETE"):
            await conn.write(sample_frame(3), table_name, mode="replace")
    assert sql(f"SELECT COUNT(*) FROM `{table_name}`") == [(3,)] and stages(sql, table_name) == []


async def test_odd_column_names_and_a_run_column_of_the_rows(
    mysql: MySQLConnector, table_name: str, sql: SQL
) -> None:
    df = pd.DataFrame({0: [1, 2], "we`ird name": ["a", "b"], RUN_COLUMN: ["stale", "stale"]})
    async with mysql:
        assert await mysql.write(df, table_name, key="0", run_key="run-9") == 2
        assert (
            await mysql.write(
                df.assign(**{"we`ird name": ["c", "d"]}), table_name, mode="upsert", key="0", run_key="run-9"
            )
            == 2
        )
    assert sorted(sql(f"SELECT `0`, `we``ird name`, `{RUN_COLUMN}` FROM `{table_name}`")) == [
        (1, "c", "run-9"),
        (2, "d", "run-9"),
    ]
