"""MYSQL connector against a real MariaDB (127.0.0.1:3306, root, database `test`): conformance and more."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from connectors import ConnectionConfig, ReadOptions, open_connector, open_connector_sync
from connectors.errors import (
    AuthenticationFailed,
    ConnectorConfigError,
    PermissionDenied,
    RequestRejected,
    SourceUnavailable,
    TargetNotFound,
)
from connectors.mysql import MySQLConnector
from tests.connectors.conformance import (
    ConnectorConformance,
    assert_same_rows,
    collect,
    joined,
    sample_frame,
)

pytestmark = pytest.mark.mysql

SQL = Callable[..., list[tuple[Any, ...]]]


class TestMySQLConformance(ConnectorConformance):
    @pytest.fixture
    def config(self, mysql_config: ConnectionConfig) -> ConnectionConfig:
        return mysql_config

    @pytest.fixture
    def target(self, table_name: str) -> str:
        return table_name

    @pytest.fixture
    def write_kwargs(self) -> dict[str, Any]:
        return {"key": "id"}  # the created table gets a primary key, which reads discover

    @pytest.fixture
    def object_path(self, sql: SQL) -> Iterator[str]:
        path = f"conformance/{uuid.uuid4().hex[:8]}/model.bin"
        yield path
        sql("DELETE FROM atom_objects WHERE path LIKE %s", (path + "%",))


@pytest.fixture
def mysql(mysql_config: ConnectionConfig) -> MySQLConnector:
    conn = open_connector(mysql_config)
    assert isinstance(conn, MySQLConnector)
    return conn


def _statements(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage()[4:] for r in caplog.records if r.name == "connectors.mysql" and r.msg == "SQL %s"]


async def test_100k_rows_page_by_key_never_offset(
    mysql: MySQLConnector, table_name: str, sql: SQL, caplog: pytest.LogCaptureFixture
) -> None:
    sql(f"CREATE TABLE `{table_name}` (id BIGINT PRIMARY KEY, x DOUBLE, s VARCHAR(20)) ENGINE=InnoDB")
    sql(f"INSERT INTO `{table_name}` SELECT seq, seq * 0.5, CONCAT('n', seq) FROM seq_1_to_100000")
    caplog.set_level(logging.DEBUG, logger="connectors.mysql")
    async with mysql:
        reader = mysql.read(table_name, ReadOptions(paginate_read_num=20_000, connect_read_num=5_000))
        total, last = 0, 0
        async for batch in reader:
            assert batch["id"].is_monotonic_increasing and batch["id"].iloc[0] > last
            last = int(batch["id"].iloc[-1])
            total += len(batch)
    assert total == 100_000 and reader.cursor == 100_000 and reader.stats.batches == 5
    pages = [
        s for s in _statements(caplog) if s.startswith(f"SELECT * FROM `{table_name}`") and "LIMIT 2" in s
    ]
    assert pages[0] == f"SELECT * FROM `{table_name}` ORDER BY `id` LIMIT 20000"
    assert all(s.endswith("WHERE `id` > %s ORDER BY `id` LIMIT 20000") for s in pages[1:]), pages
    assert len(pages) == 6  # five full pages, then one that finds nothing
    assert not any("OFFSET" in s.upper() or "LIMIT %S," in s.upper() for s in _statements(caplog))


async def test_types_are_preserved(mysql: MySQLConnector, table_name: str, sql: SQL) -> None:
    sql(
        f"CREATE TABLE `{table_name}` (id INT PRIMARY KEY, big BIGINT, maybe INT NULL, f DOUBLE, "
        "price DECIMAL(12,3), at DATETIME(6), day DATE, name VARCHAR(30), note TEXT, flag TINYINT(1))"
    )
    sql(
        f"INSERT INTO `{table_name}` VALUES "
        "(1, 9007199254740993, 7, 1.25, 12.345, '2024-05-06 07:08:09.123456', '2024-05-06', 'ä', 'x', 1),"
        "(2, -1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0)"
    )
    async with mysql:
        [df] = await collect(mysql.read(table_name, ReadOptions(disposable=True)))
    assert df["id"].dtype == np.int64 and df["big"].dtype == np.int64
    assert df["big"].iloc[0] == 9007199254740993  # exact beyond float precision
    assert df["maybe"].dtype == np.float64 and np.isnan(df["maybe"].iloc[1])
    assert df["f"].dtype == np.float64 and df["f"].iloc[0] == 1.25 and np.isnan(df["f"].iloc[1])
    assert df["price"].dtype == object and df["price"].iloc[0] == decimal.Decimal("12.345")
    assert df["price"].iloc[1] is None
    assert pd.api.types.is_datetime64_any_dtype(df["at"])
    assert df["at"].iloc[0] == pd.Timestamp("2024-05-06 07:08:09.123456") and pd.isna(df["at"].iloc[1])
    assert pd.api.types.is_datetime64_any_dtype(df["day"])
    assert df["name"].iloc[0] == "ä" and pd.isna(df["name"].iloc[1])
    assert list(df["flag"]) == [1, 0]


async def test_write_creates_typed_table_and_roundtrips(
    mysql: MySQLConnector, table_name: str, sql: SQL
) -> None:
    df = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "score": [0.5, None, 2.0],
            "ok": [True, False, True],
            "at": pd.to_datetime(["2024-01-01 00:00:00.000001", None, "2024-12-31 23:59:59.000000"]),
            "amount": [decimal.Decimal("1.50"), None, decimal.Decimal("-2.25")],
            "label": ["a", None, "c"],
            "blob": [b"\x00", b"", None],
        }
    )
    async with mysql:
        assert await mysql.write(df, table_name, key="id") == 3
        [back] = await collect(mysql.read(table_name, ReadOptions(disposable=True)))
    types = {row[0]: row[1] for row in sql(f"SHOW COLUMNS FROM `{table_name}`")}
    assert types["id"] == "bigint(20)" and types["score"] == "double" and types["ok"] == "tinyint(1)"
    assert types["at"] == "datetime(6)" and types["amount"] == "decimal(65,2)" and types["blob"] == "longblob"
    assert sql(f"SHOW KEYS FROM `{table_name}` WHERE Key_name = 'PRIMARY'")[0][4] == "id"
    assert list(back["id"]) == [1, 2, 3] and np.isnan(back["score"].iloc[1])
    assert back["at"].iloc[0] == pd.Timestamp("2024-01-01 00:00:00.000001") and pd.isna(back["at"].iloc[1])
    assert back["amount"].iloc[0] == decimal.Decimal("1.50") and back["amount"].iloc[1] is None
    assert back["label"].iloc[2] == "c" and pd.isna(back["label"].iloc[1])
    assert back["blob"].iloc[0] == b"\x00" and back["blob"].iloc[2] is None


async def test_failed_write_half_way_leaves_no_rows(mysql: MySQLConnector, table_name: str, sql: SQL) -> None:
    mysql.write_batch_rows = 1_000
    async with mysql:
        await mysql.write(sample_frame(1).iloc[:0], table_name, key="id")  # empty table with a primary key
        bad = sample_frame(3_500)
        bad.loc[3_200, "id"] = 7  # duplicate key in the fourth batch: earlier batches were inserted
        with pytest.raises(RequestRejected, match="Duplicate entry") as info:
            await mysql.write(bad, table_name)
        assert "password" not in str(info.value).lower()
        assert sql(f"SELECT COUNT(*) FROM `{table_name}`") == [(0,)]
        # replace that fails keeps the old rows
        await mysql.write(sample_frame(10), table_name)
        with pytest.raises(RequestRejected):
            await mysql.write(bad, table_name, mode="replace")
        assert sql(f"SELECT COUNT(*) FROM `{table_name}`") == [(10,)]
        # the connection is still usable after the rollback
        assert await mysql.write(sample_frame(5, start=100), table_name) == 5


async def test_failed_write_to_a_new_table_drops_it(mysql: MySQLConnector, table_name: str, sql: SQL) -> None:
    bad = sample_frame(20)
    bad.loc[15, "id"] = 3
    async with mysql:
        with pytest.raises(RequestRejected):
            await mysql.write(bad, table_name, key="id")
    assert sql("SHOW TABLES LIKE %s", (table_name,)) == []


async def test_replace_mode(mysql: MySQLConnector, table_name: str) -> None:
    async with mysql:
        await mysql.write(sample_frame(50), table_name, key="id")
        await mysql.write(sample_frame(5, start=1_000), table_name, mode="replace")
        got = joined(await collect(mysql.read(table_name)))
    assert_same_rows(got, sample_frame(5, start=1_000))


async def test_wrong_password_is_authentication_failed(mysql_config: ConnectionConfig) -> None:
    bad = replace(mysql_config, password="definitely-wrong-pw")
    async with open_connector(bad) as conn:
        with pytest.raises(AuthenticationFailed) as info:
            await conn.ping()
        with pytest.raises(AuthenticationFailed):
            await collect(conn.read("anything"))
    message = str(info.value)
    assert f"'{mysql_config.account}'" in message and "check the account and password" in message
    assert "definitely-wrong-pw" not in message and "definitely-wrong-pw" not in repr(info.value.context)


async def test_unreachable_server_is_source_unavailable(mysql_config: ConnectionConfig) -> None:
    async with open_connector(replace(mysql_config, port=1)) as conn:
        with pytest.raises(SourceUnavailable, match="127.0.0.1:1") as info:
            await conn.ping()
    assert info.value.context["code"] == 2003


async def test_unknown_database_is_target_not_found(mysql_config: ConnectionConfig) -> None:
    async with open_connector(replace(mysql_config, space="atom_no_such_db")) as conn:
        with pytest.raises(TargetNotFound, match="atom_no_such_db"):
            await conn.ping()


async def test_table_without_key_needs_one(mysql: MySQLConnector, table_name: str, sql: SQL) -> None:
    sql(f"CREATE TABLE `{table_name}` (a INT, b VARCHAR(5))")
    sql(f"INSERT INTO `{table_name}` SELECT seq, 'x' FROM seq_1_to_25")
    async with mysql:
        with pytest.raises(ConnectorConfigError, match="set the data source's key"):
            await collect(mysql.read(table_name))
        with pytest.raises(ConnectorConfigError, match="not a column"):
            await collect(mysql.read(table_name, ReadOptions(key="zzz")))
        got = joined(await collect(mysql.read(table_name, ReadOptions(key="a", paginate_read_num=10))))
    assert list(got["a"]) == list(range(1, 26))


async def test_unique_not_null_key_is_used_when_no_primary(
    mysql: MySQLConnector, table_name: str, sql: SQL, caplog: pytest.LogCaptureFixture
) -> None:
    sql(f"CREATE TABLE `{table_name}` (code VARCHAR(10) NOT NULL, v INT, UNIQUE KEY (code))")
    sql(f"INSERT INTO `{table_name}` SELECT CONCAT('k', LPAD(seq, 3, '0')), seq FROM seq_1_to_30")
    caplog.set_level(logging.DEBUG, logger="connectors.mysql")
    async with mysql:
        reader = mysql.read(table_name, ReadOptions(paginate_read_num=7))
        got = joined(await collect(reader))
    assert list(got["v"]) == list(range(1, 31)) and reader.cursor == "k030"
    assert any("WHERE `code` > %s" in s for s in _statements(caplog))


async def test_query_with_key_pages_as_derived_table(
    mysql: MySQLConnector, table_name: str, sql: SQL, caplog: pytest.LogCaptureFixture
) -> None:
    sql(f"CREATE TABLE `{table_name}` (id INT PRIMARY KEY, g INT)")
    sql(f"INSERT INTO `{table_name}` SELECT seq, seq % 3 FROM seq_1_to_100")
    caplog.set_level(logging.DEBUG, logger="connectors.mysql")
    query = f"SELECT id, g FROM `{table_name}` WHERE g = 1"
    async with mysql:
        reader = mysql.read(query, ReadOptions(key="id", paginate_read_num=10))
        got = joined(await collect(reader))
        resumed = joined(await collect(mysql.read(query, ReadOptions(key="id", resume_from=50))))
    assert list(got["id"]) == list(range(1, 101, 3)) and reader.cursor == 100
    assert list(resumed["id"]) == list(range(52, 101, 3))
    assert any("AS `_atom_q` WHERE `id` > %s ORDER BY `id` LIMIT 10" in s for s in _statements(caplog))
    assert not any("OFFSET" in s.upper() for s in _statements(caplog))


async def test_query_without_key_streams_and_resumes_by_row_count(mysql: MySQLConnector) -> None:
    query = "SELECT seq AS n, seq * 2 AS twice FROM seq_1_to_2500"
    async with mysql:
        reader = mysql.read(query, ReadOptions(paginate_read_num=1_000, connect_read_num=300))
        batches = await collect(reader)
        assert [len(b) for b in batches] == [1_000, 1_000, 500] and reader.cursor == 2_500
        resumed = joined(await collect(mysql.read(query, ReadOptions(resume_from=2_000))))
        assert list(resumed["n"]) == list(range(2_001, 2_501))
        # stopping early closes the stream's own connection; the shared one keeps working
        early = mysql.read(query, ReadOptions(paginate_read_num=100))
        async with early:
            await early.__anext__()
        assert not mysql._streams
        await mysql.ping()
        with pytest.raises(RequestRejected, match="syntax"):
            await collect(mysql.read("SELECT FROM WHERE"))


async def test_permission_denied_for_a_read_only_user(
    mysql_config: ConnectionConfig, table_name: str, sql: SQL
) -> None:
    user, password = f"atom_ro_{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    sql(f"CREATE TABLE `{table_name}` (id INT PRIMARY KEY)")
    sql(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
    try:
        sql(f"GRANT SELECT ON `{mysql_config.space}`.`{table_name}` TO '{user}'@'%'")
        ro = replace(mysql_config, account=user, password=password)
        async with open_connector(ro) as conn:
            assert joined(await collect(conn.read(table_name))).empty
            with pytest.raises(PermissionDenied, match=user) as info:
                await conn.write(pd.DataFrame({"id": [1]}), table_name)
        assert password not in str(info.value)
    finally:
        sql(f"DROP USER IF EXISTS '{user}'@'%'")


async def test_reconnects_after_the_server_drops_the_connection(mysql: MySQLConnector, sql: SQL) -> None:
    async with mysql:
        await mysql.ping()
        assert mysql._conn is not None
        sql(f"KILL {mysql._conn.thread_id()}")
        await asyncio.sleep(0.05)
        with pytest.raises(SourceUnavailable):
            await mysql.ping()
        await mysql.ping()  # a fresh connection


async def test_put_object_uri(mysql: MySQLConnector, sql: SQL) -> None:
    path = f"models/{uuid.uuid4().hex[:8]}/v1.bin"
    async with mysql:
        uri = await mysql.put_object(path, b"abc")
    try:
        assert uri == f"mysql://{mysql.host}:{mysql.port}/{mysql.database}/atom_objects/{path}"
        [(size, when)] = sql("SELECT LENGTH(data), updated_at FROM atom_objects WHERE path = %s", (path,))
        assert size == 3 and isinstance(when, dt.datetime)
    finally:
        sql("DELETE FROM atom_objects WHERE path = %s", (path,))


def test_sync_facade_on_mysql(mysql_config: ConnectionConfig, table_name: str) -> None:
    with open_connector_sync(mysql_config) as conn:
        conn.ping()
        assert conn.write(sample_frame(300), table_name, key="id") == 300
        with conn.read(table_name, ReadOptions(paginate_read_num=128)) as reader:
            batches = list(reader)
        assert [len(b) for b in batches] == [128, 128, 44] and reader.cursor == 299
        assert_same_rows(joined(batches), sample_frame(300))
