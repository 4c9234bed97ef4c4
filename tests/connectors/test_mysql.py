"""MYSQL reads against a real MariaDB: conformance (tables, keyed queries), paging, types, errors."""

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
import pyarrow as pa
import pytest

from connectors import ConnectionConfig, ReadOptions, open_connector, open_connector_sync
from connectors._mysql_settings import DEFAULT_PAGE_ROWS
from connectors.base import WriteOptions
from connectors.errors import (
    AuthenticationFailed,
    ConnectorConfigError,
    RequestRejected,
    SourceUnavailable,
    TargetNotFound,
)
from connectors.mysql import MySQLConnector
from tests.connectors.conformance import ConnectorConformance, assert_same_rows, collect, joined, sample_frame
from tests.connectors.conftest import mysql_config_for

pytestmark = pytest.mark.mysql

SQL = Callable[..., list[tuple[Any, ...]]]
ENGINES = ["connectorx", "pymysql"]


class TestMySQLConformance(ConnectorConformance):
    """Table targets, read through the default engine (connectorx)."""

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


class TestMySQLPyMySQLConformance(TestMySQLConformance):
    """The same suite through the pymysql fallback engine."""

    @pytest.fixture
    def config(self, mysql_config: ConnectionConfig) -> ConnectionConfig:
        return mysql_config_for(source_conf={"engine": "pymysql"})


class _QueryTargets(MySQLConnector):
    """Writes to `SELECT * FROM t` go to `t`, so the suite can read keyed queries of what it wrote."""

    def __init__(self, config: ConnectionConfig, table: str) -> None:
        super().__init__(config)
        self._table = table

    def sink(self, target: str, options: WriteOptions | None = None) -> Any:
        return super().sink(self._table, options)


class TestMySQLKeyedQueryConformance(TestMySQLConformance):
    """Keyed query targets: `SELECT * FROM t` paged by `id` as a derived table."""

    @pytest.fixture
    def target(self, table_name: str) -> str:
        return f"SELECT * FROM `{table_name}`"

    @pytest.fixture
    def read_options(self) -> ReadOptions:
        return ReadOptions(key="id")

    @pytest.fixture
    def missing_target(self, table_name: str) -> str:
        return f"SELECT * FROM `{table_name}_missing`"

    @pytest.fixture
    def connector(self, config: ConnectionConfig, table_name: str) -> MySQLConnector:
        return _QueryTargets(config, table_name)


@pytest.fixture
def mysql(mysql_config: ConnectionConfig) -> MySQLConnector:
    conn = open_connector(mysql_config)
    assert isinstance(conn, MySQLConnector)
    return conn


def engine_connector(engine: str, **conf: Any) -> MySQLConnector:
    conn = open_connector(mysql_config_for(source_conf={"engine": engine, **conf}))
    assert isinstance(conn, MySQLConnector)
    return conn


def statements(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage()[4:] for r in caplog.records if r.name == "connectors.mysql" and r.msg == "SQL %s"]


# -- paging ------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_pages_by_key_never_offset(engine: str, table_name: str, sql: SQL, caplog: Any) -> None:
    sql(f"CREATE TABLE `{table_name}` (id BIGINT PRIMARY KEY, x DOUBLE, s VARCHAR(20)) ENGINE=InnoDB")
    sql(f"INSERT INTO `{table_name}` SELECT seq, seq * 0.5, CONCAT('n', seq) FROM seq_1_to_10000")
    caplog.set_level(logging.DEBUG, logger="connectors.mysql")
    async with engine_connector(engine, partitions=1) as conn:
        reader = conn.read(table_name, ReadOptions(paginate_read_num=2_000, connect_read_num=500))
        total, last = 0, 0
        async for batch in reader:
            assert batch["id"].is_monotonic_increasing and batch["id"].iloc[0] > last
            last = int(batch["id"].iloc[-1])
            total += len(batch)
    assert total == 10_000 and reader.cursor == 10_000 and reader.stats.batches == 5
    pages = [
        s for s in statements(caplog) if s.startswith(f"SELECT * FROM `{table_name}`") and "LIMIT 0" not in s
    ]
    assert pages[0] == f"SELECT * FROM `{table_name}` ORDER BY `id` LIMIT 2000"
    assert all(s.endswith("ORDER BY `id` LIMIT 2000") and "WHERE `id` > " in s for s in pages[1:]), pages
    assert len(pages) == 6  # five full pages, then one that finds nothing
    assert not any("OFFSET" in s.upper() for s in statements(caplog))


async def test_integer_keys_are_fetched_as_parallel_ranges(table_name: str, sql: SQL, caplog: Any) -> None:
    sql(f"CREATE TABLE `{table_name}` (id BIGINT PRIMARY KEY, v INT) ENGINE=InnoDB")
    # dense, then a gap, then sparse, then dense again: ranges must adapt and never skip a row
    sql(f"INSERT INTO `{table_name}` SELECT seq, seq FROM seq_1_to_3000")
    sql(f"INSERT INTO `{table_name}` SELECT 1000000 + seq * 97, seq FROM seq_1_to_700")
    sql(f"INSERT INTO `{table_name}` SELECT 5000000000 + seq, seq FROM seq_1_to_2300")
    expected = [r[0] for r in sql(f"SELECT id FROM `{table_name}` ORDER BY id")]
    caplog.set_level(logging.DEBUG, logger="connectors.mysql")
    async with engine_connector("connectorx", partitions=3) as conn:
        batches = await collect(conn.read(table_name, ReadOptions(paginate_read_num=500)))
    got = joined(batches)["id"].tolist()
    assert got == expected
    assert [len(b) for b in batches] == [500] * 12  # exact pages whatever the ranges fetched
    assert [s for s in statements(caplog) if "AND `id` <= " in s]
    assert not any("OFFSET" in s.upper() for s in statements(caplog))


async def test_default_page_size(table_name: str, sql: SQL) -> None:
    sql(f"CREATE TABLE `{table_name}` (id INT PRIMARY KEY)")
    sql(f"INSERT INTO `{table_name}` SELECT seq FROM seq_1_to_{DEFAULT_PAGE_ROWS + 5}")
    async with engine_connector("connectorx") as conn:
        sizes = [len(b) for b in await collect(conn.read(table_name))]
    assert sizes == [DEFAULT_PAGE_ROWS, 5]


async def test_page_fetch_runs_off_the_event_loop(table_name: str, sql: SQL) -> None:
    sql(f"CREATE TABLE `{table_name}` (id INT PRIMARY KEY, s VARCHAR(40))")
    sql(f"INSERT INTO `{table_name}` SELECT seq, MD5(seq) FROM seq_1_to_60000")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async with engine_connector("connectorx") as conn:
        task = asyncio.create_task(ticker())
        reader = conn.read(table_name, ReadOptions(paginate_read_num=60_000, async_load=False))
        async with reader:
            before = ticks
            page = await reader.__anext__()
            during = ticks - before
        task.cancel()
    assert len(page) == 60_000
    assert during > 20  # the loop kept running while the page was fetched and converted


async def test_unique_not_null_key_is_used_when_no_primary(
    mysql: MySQLConnector, table_name: str, sql: SQL
) -> None:
    sql(f"CREATE TABLE `{table_name}` (code VARCHAR(10) NOT NULL, v INT, UNIQUE KEY (code))")
    sql(f"INSERT INTO `{table_name}` SELECT CONCAT('k', LPAD(seq, 3, '0')), seq FROM seq_1_to_30")
    async with mysql:
        reader = mysql.read(table_name, ReadOptions(paginate_read_num=7))
        got = joined(await collect(reader))
        resumed = joined(await collect(mysql.read(table_name, ReadOptions(resume_from="k025"))))
    assert list(got["v"]) == list(range(1, 31)) and reader.cursor == "k030"
    assert list(resumed["v"]) == list(range(26, 31))


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


@pytest.mark.parametrize("engine", ENGINES)
async def test_query_with_key_pages_as_derived_table(
    engine: str, table_name: str, sql: SQL, caplog: Any
) -> None:
    sql(f"CREATE TABLE `{table_name}` (id INT PRIMARY KEY, g INT, s VARCHAR(9))")
    sql(f"INSERT INTO `{table_name}` SELECT seq, seq % 3, IF(seq % 2, 'a%b', 'c') FROM seq_1_to_100")
    caplog.set_level(logging.DEBUG, logger="connectors.mysql")
    query = f"SELECT id, g, s FROM `{table_name}` WHERE g = 1 AND s LIKE '%'"  # a literal % survives
    async with engine_connector(engine) as conn:
        reader = conn.read(query, ReadOptions(key="id", paginate_read_num=10))
        got = joined(await collect(reader))
        resumed = joined(await collect(conn.read(query, ReadOptions(key="id", resume_from=50))))
    assert list(got["id"]) == list(range(1, 101, 3)) and reader.cursor == 100
    assert list(resumed["id"]) == list(range(52, 101, 3))
    assert any("AS `_atom_q` WHERE `id` > " in s and s.endswith("LIMIT 10") for s in statements(caplog))


async def test_query_without_key_streams_and_resumes_by_row_count(mysql: MySQLConnector) -> None:
    query = (
        "SELECT seq AS n, seq * 2 AS twice, IF(seq % 2, NULL, seq) AS maybe FROM seq_1_to_2500 ORDER BY seq"
    )
    async with mysql:
        reader = mysql.read(query, ReadOptions(paginate_read_num=1_000, connect_read_num=300))
        batches = await collect(reader)
        assert [len(b) for b in batches] == [1_000, 1_000, 500] and reader.cursor == 2_500
        assert batches[0]["maybe"].dtype == "UInt64"  # seq is BIGINT UNSIGNED
        resumed = joined(await collect(mysql.read(query, ReadOptions(resume_from=2_000))))
        assert list(resumed["n"]) == list(range(2_001, 2_501))
        early = mysql.read(query, ReadOptions(paginate_read_num=100))
        async with early:
            await early.__anext__()
        assert not mysql._streams  # stopping early closed the stream's own connection
        await mysql.ping()
        with pytest.raises(RequestRejected, match="syntax"):
            await collect(mysql.read("SELECT FROM WHERE"))


# -- types -------------------------------------------------------------------------------------

FIDELITY_DDL = (
    "(id BIGINT PRIMARY KEY, maybe INT NULL, f DOUBLE, price DECIMAL(12,4), at DATETIME(6), day DATE, "
    "name VARCHAR(30) NULL, flag TINYINT(1), raw BLOB, big BIGINT UNSIGNED, small FLOAT, note TEXT)"
)
FIDELITY_ROWS = (
    "(1, 7, 1.25, 12.3456, '2024-05-06 07:08:09.123456', '2024-05-06', 'ä\\'\"\\\\', 1, X'00FF', "
    "18446744073709551615, 0.5, 'long'),"
    "(2, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL),"
    "(9007199254740993, -2147483648, -0.0, -99999999.9999, '1000-01-01 00:00:00', '9999-12-31', '', -128, "
    "X'',"
    " 0, -1.5, '')"
)


async def read_all(engine: str, target: str, **opts: Any) -> Any:
    async with engine_connector(engine) as conn:
        batches = await collect(conn.read(target, ReadOptions(paginate_read_num=2, **opts)))
    return pa.concat_tables(batches) if opts.get("arrow") else joined(batches)


async def test_bulk_and_pymysql_give_identical_frames(table_name: str, sql: SQL) -> None:
    sql(f"CREATE TABLE `{table_name}` {FIDELITY_DDL}")
    sql(f"INSERT INTO `{table_name}` VALUES {FIDELITY_ROWS}")
    bulk, text = await read_all("connectorx", table_name), await read_all("pymysql", table_name)
    pd.testing.assert_frame_equal(bulk, text, check_exact=True)
    df = bulk
    assert df["id"].dtype == np.int64 and df["id"].iloc[2] == 9007199254740993  # exact beyond float
    assert df["maybe"].dtype == "Int64" and df["maybe"].iloc[1] is pd.NA and df["maybe"].iloc[2] == -(2**31)
    assert df["f"].dtype == np.float64 and np.isnan(df["f"].iloc[1])
    assert df["price"].dtype == pd.ArrowDtype(pa.decimal128(12, 4))
    assert df["price"].iloc[0] == decimal.Decimal("12.3456") and pd.isna(df["price"].iloc[1])
    assert str(df["at"].dtype) == "datetime64[us]" and df["at"].iloc[0] == pd.Timestamp(
        "2024-05-06 07:08:09.123456"
    )
    assert pd.isna(df["at"].iloc[1]) and df["at"].iloc[2] == pd.Timestamp("1000-01-01")
    assert pd.api.types.is_datetime64_any_dtype(df["day"]) and df["day"].iloc[2] == pd.Timestamp("9999-12-31")
    assert df["name"].iloc[0] == "ä'\"\\" and pd.isna(df["name"].iloc[1]) and df["name"].iloc[2] == ""
    assert df["flag"].dtype == "Int64" and list(df["flag"]) == [1, 0, -128]
    assert df["raw"].iloc[0] == b"\x00\xff" and df["raw"].iloc[1] is None and df["raw"].iloc[2] == b""
    assert df["big"].dtype == "UInt64" and df["big"].iloc[0] == 2**64 - 1
    assert df["small"].dtype == np.float32 and df["small"].iloc[2] == np.float32(-1.5)


async def test_arrow_pages_have_the_canonical_schema(table_name: str, sql: SQL) -> None:
    sql(f"CREATE TABLE `{table_name}` {FIDELITY_DDL}")
    sql(f"INSERT INTO `{table_name}` VALUES {FIDELITY_ROWS}")
    bulk = await read_all("connectorx", table_name, arrow=True)
    text = await read_all("pymysql", table_name, arrow=True)
    assert isinstance(bulk, pd.DataFrame) is False
    assert bulk.schema == text.schema and bulk.equals(text)
    types = {f.name: f.type for f in bulk.schema}
    assert types["price"] == pa.decimal128(12, 4) and types["at"] == pa.timestamp("us")
    assert types["day"] == pa.date32() and types["big"] == pa.uint64() and types["raw"] == pa.binary()


async def test_types_connectorx_cannot_decode_fall_back_to_pymysql(
    table_name: str, sql: SQL, caplog: Any
) -> None:
    sql(
        f"CREATE TABLE `{table_name}` "
        "(id INT PRIMARY KEY, t TIME(6), wide DECIMAL(40,12), fine DECIMAL(20,15))"
    )
    sql(
        f"INSERT INTO `{table_name}` VALUES "
        "(1, '-12:34:56.5', 123456789012345678901234567.123456789012, 1.5), "
        "(2, '838:59:59', NULL, 0.000000000000001)"
    )
    caplog.set_level(logging.INFO, logger="connectors.mysql")
    df = await read_all("auto", table_name)
    assert any("reading with pymysql" in r.getMessage() for r in caplog.records)
    assert df["t"].iloc[0] == -pd.Timedelta(hours=12, minutes=34, seconds=56.5)
    assert df["t"].iloc[1] == pd.Timedelta(hours=838, minutes=59, seconds=59)
    assert df["wide"].iloc[0] == decimal.Decimal("123456789012345678901234567.123456789012")
    assert df["fine"].iloc[1] == decimal.Decimal("0.000000000000001")


@pytest.mark.parametrize(("mode", "kind"), [("float", np.float64), ("object", object)])
async def test_decimal_modes(table_name: str, sql: SQL, mode: str, kind: Any) -> None:
    sql(f"CREATE TABLE `{table_name}` (id INT PRIMARY KEY, price DECIMAL(12,4))")
    sql(f"INSERT INTO `{table_name}` VALUES (1, 12.3456), (2, NULL)")
    async with engine_connector("connectorx", decimal=mode) as conn:
        df = joined(await collect(conn.read(table_name)))
    assert df["price"].dtype == kind
    assert df["price"].iloc[0] == (12.3456 if mode == "float" else decimal.Decimal("12.3456"))
    assert pd.isna(df["price"].iloc[1])


async def test_without_connectorx_reads_use_pymysql(
    table_name: str, sql: SQL, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    sql(f"CREATE TABLE `{table_name}` (id INT PRIMARY KEY, v DOUBLE)")
    sql(f"INSERT INTO `{table_name}` SELECT seq, seq / 4 FROM seq_1_to_250")
    monkeypatch.setattr("connectors._mysql_bulk.available", lambda: False)  # as if it were not installed
    caplog.set_level(logging.DEBUG, logger="connectors.mysql")
    async with MySQLConnector(mysql_config_for()) as conn:
        assert conn._bulk is None
        got = joined(await collect(conn.read(table_name, ReadOptions(paginate_read_num=100))))
    assert got["id"].tolist() == list(range(1, 251)) and got["v"].iloc[-1] == 62.5
    assert not [r for r in caplog.records if r.pathname.endswith("_mysql_bulk.py")]
    with pytest.raises(ConnectorConfigError, match="pip install connectorx"):
        MySQLConnector(mysql_config_for(source_conf={"engine": "connectorx"}))


# -- errors and the connection -------------------------------------------------------------


@pytest.fixture
def password_user(sql: SQL) -> Iterator[str]:
    """An account that logs in with a password (root may log in by socket credentials instead)."""
    user = f"atom_pw_{uuid.uuid4().hex[:6]}"
    for host in ("%", "localhost"):
        sql(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY 'the-right-pw'")
    yield user
    for host in ("%", "localhost"):
        sql(f"DROP USER IF EXISTS '{user}'@'{host}'")


async def test_wrong_password_is_authentication_failed(
    mysql_config: ConnectionConfig, password_user: str
) -> None:
    bad = replace(mysql_config, account=password_user, password="definitely-wrong-pw")
    async with open_connector(bad) as conn:
        with pytest.raises(AuthenticationFailed) as info:
            await conn.ping()
        with pytest.raises(AuthenticationFailed):
            await collect(conn.read("anything"))
    message = str(info.value)
    assert f"'{password_user}'" in message and "check the account and password" in message
    assert "definitely-wrong-pw" not in message and "definitely-wrong-pw" not in repr(info.value.context)


async def test_unreachable_server_is_source_unavailable(mysql_config: ConnectionConfig) -> None:
    conf = {k: v for k, v in mysql_config.source_conf.items() if k != "unix_socket"}
    async with open_connector(replace(mysql_config, addr="127.0.0.1", port=1, source_conf=conf)) as conn:
        with pytest.raises(SourceUnavailable, match="127.0.0.1:1") as info:
            await conn.ping()
        with pytest.raises(SourceUnavailable, match="gave up after 1 retries"):
            await collect(conn.read("t", ReadOptions(retries=1, retry_backoff_s=0.01)))
    assert info.value.context["code"] == 2003


async def test_unknown_database_is_target_not_found(mysql_config: ConnectionConfig) -> None:
    async with open_connector(replace(mysql_config, space="atom_no_such_db")) as conn:
        with pytest.raises(TargetNotFound, match="atom_no_such_db"):
            await conn.ping()


def test_bad_source_conf_is_refused() -> None:
    with pytest.raises(ConnectorConfigError, match="valid values are auto, connectorx, pymysql"):
        open_connector(mysql_config_for(source_conf={"engine": "odbc"}))
    with pytest.raises(ConnectorConfigError, match="partitions=0 must be at least 1"):
        open_connector(mysql_config_for(source_conf={"partitions": 0}))
    conn = open_connector(mysql_config_for(password="s3cret-pw"))
    assert "s3cret-pw" not in repr(conn) and "s3cret-pw" not in repr(conn._bulk)  # type: ignore[attr-defined]


async def test_ping_replaces_a_dropped_connection(mysql: MySQLConnector, sql: SQL) -> None:
    async with mysql:
        await mysql.ping()
        assert mysql._conn is not None
        old = mysql._conn.thread_id()
        sql(f"KILL {old}")
        await mysql.ping()  # the dead connection is noticed and replaced
        assert mysql._conn is not None and mysql._conn.thread_id() != old


# -- objects and the sync facade ---------------------------------------------------------------


async def test_objects_stat_and_list(mysql: MySQLConnector, sql: SQL) -> None:
    base = f"models/{uuid.uuid4().hex[:8]}"
    try:
        async with mysql:
            uri = await mysql.put_object(f"{base}/v1.bin", b"abc")
            await mysql.put_object(f"{base}/v2.bin", b"hello")
            await mysql.put_object(f"{base}_x/other.bin", b"z")  # `_` in the prefix is not a wildcard
            info = await mysql.stat_object(f"{base}/v2.bin")
            listed = [o async for o in mysql.list_objects(f"{base}/")]
            with pytest.raises(TargetNotFound, match="v9.bin"):
                await mysql.stat_object(f"{base}/v9.bin")
        assert uri == f"mysql://{mysql.host}:{mysql.port}/{mysql.database}/atom_objects/{base}/v1.bin"
        assert info.size == 5 and info.etag == "5d41402abc4b2a76b9719d911017c592" and info.modified > 0
        assert [(o.path, o.size) for o in listed] == [(f"{base}/v1.bin", 3), (f"{base}/v2.bin", 5)]
        [(when,)] = sql("SELECT updated_at FROM atom_objects WHERE path = %s", (f"{base}/v1.bin",))
        assert isinstance(when, dt.datetime)
    finally:
        sql("DELETE FROM atom_objects WHERE path LIKE %s", (base + "%",))


def test_sync_facade_on_mysql(mysql_config: ConnectionConfig, table_name: str) -> None:
    with open_connector_sync(mysql_config) as conn:
        conn.ping()
        assert conn.write(sample_frame(300), table_name, key="id") == 300
        with conn.read(table_name, ReadOptions(paginate_read_num=128)) as reader:
            batches = list(reader)
        assert [len(b) for b in batches] == [128, 128, 44] and reader.cursor == 299
        assert_same_rows(joined(batches), sample_frame(300))
