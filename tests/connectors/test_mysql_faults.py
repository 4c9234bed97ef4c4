"""MYSQL reads when things go wrong: dropped connections, a server that stays away, columns that change.

A small TCP proxy sits between the connector and the test server; a test cuts every connection
through it in the middle of a page, or makes it refuse new ones.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from connectors import ConnectionConfig, ReadOptions
from connectors._mysql_bulk import BulkEngine
from connectors.errors import SchemaChanged, SourceUnavailable, TargetNotFound
from connectors.mysql import MySQLConnector
from tests.connectors.conformance import collect, joined
from tests.connectors.conftest import MYSQL_SOCKET, mysql_config_for, mysql_where

pytestmark = pytest.mark.mysql

SQL = Callable[..., list[tuple[Any, ...]]]


class Proxy:
    """Forwards 127.0.0.1:<port> to the test server; can cut all connections or refuse new ones."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._budget: int | None = None
        self.refusing = False
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _upstream(self) -> socket.socket:
        where = mysql_where()
        if "unix_socket" in where:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(where["unix_socket"])
            return sock
        return socket.create_connection((where["host"], where["port"]))

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            server = self._upstream()
            with self._lock:
                self._sockets |= {client, server}
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if downstream:
                with self._lock:
                    if self._budget is not None:
                        self._budget -= len(data)
                        if self._budget <= 0:  # cut in the middle of whatever is in flight
                            self._budget = None
                            self._cut_locked()
                            return
            try:
                dst.sendall(data)
            except OSError:
                break
        for sock in (src, dst):
            _close(sock)

    def _cut_locked(self) -> None:
        self.cuts += 1
        for sock in self._sockets:
            _close(sock)
        self._sockets.clear()

    def cut_after(self, nbytes: int) -> None:
        """Cut every connection once `nbytes` more bytes have come back from the server."""
        with self._lock:
            self._budget = nbytes

    def cut(self) -> None:
        with self._lock:
            self._cut_locked()

    def close(self) -> None:
        self._listener.close()
        self.cut()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def proxy(mysql_admin: Any) -> Iterator[Proxy]:
    p = Proxy()
    yield p
    p.close()


def through(proxy: Proxy, **conf: Any) -> ConnectionConfig:
    config = mysql_config_for(addr="127.0.0.1", port=proxy.port, source_conf=conf)
    return replace(config, source_conf={k: v for k, v in config.source_conf.items() if k != "unix_socket"})


@pytest.fixture
def filled(table_name: str, sql: SQL) -> str:
    sql(f"CREATE TABLE `{table_name}` (id BIGINT PRIMARY KEY, payload VARCHAR(100) NOT NULL)")
    sql(f"INSERT INTO `{table_name}` SELECT seq, REPEAT(MD5(seq), 3) FROM seq_1_to_3000")
    return table_name


def fast(pages: int, retries: int = 3) -> ReadOptions:
    """Small pages, quick retries, no prefetch (so the test decides when the next page is fetched)."""
    return ReadOptions(paginate_read_num=pages, retries=retries, retry_backoff_s=0.01, async_load=False)


@pytest.mark.parametrize(("engine", "partitions"), [("connectorx", 1), ("connectorx", 2), ("pymysql", 1)])
async def test_a_drop_mid_page_is_retried_and_every_row_comes_once(
    proxy: Proxy, filled: str, engine: str, partitions: int, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING)
    async with MySQLConnector(through(proxy, engine=engine, partitions=partitions)) as conn:
        reader = conn.read(filled, fast(300))
        async with reader:
            first = await reader.__anext__()
            proxy.cut_after(4_000)  # the next page's rows are ~30 kB: the cut lands inside it
            rest = [b async for b in reader]
    ids = joined([first, *rest])["id"].tolist()
    assert ids == list(range(1, 3001))
    assert proxy.cuts == 1
    assert [r for r in caplog.records if "retry 1/3" in r.getMessage()]
    assert not [r for r in caplog.records if "reading the rest with pymysql" in r.getMessage()]


@pytest.mark.parametrize("engine", ["connectorx", "pymysql"])
async def test_a_server_that_stays_away_gives_one_clear_error(proxy: Proxy, filled: str, engine: str) -> None:
    async with MySQLConnector(through(proxy, engine=engine, connect_timeout=2)) as conn:
        reader = conn.read(filled, fast(300, retries=2))
        async with reader:
            await reader.__anext__()
            proxy.refusing = True
            proxy.cut()
            with pytest.raises(SourceUnavailable) as info:
                await reader.__anext__()
    message = str(info.value)
    assert "\n" not in message and f"127.0.0.1:{proxy.port}" in message
    assert message.startswith(f"{filled}: gave up after 2 retries") and "resume_from=300" in message
    assert info.value.context["cursor"] == 300


async def test_a_killed_connection_between_pages_is_retried(filled: str, sql: SQL) -> None:
    async with MySQLConnector(mysql_config_for(source_conf={"engine": "pymysql"})) as conn:
        reader = conn.read(filled, fast(1_000))
        async with reader:
            first = await reader.__anext__()
            assert conn._conn is not None
            sql(f"KILL {conn._conn.thread_id()}")
            rest = [b async for b in reader]
    assert joined([first, *rest])["id"].tolist() == list(range(1, 3001))


@pytest.mark.parametrize("engine", ["connectorx", "pymysql"])
@pytest.mark.parametrize(
    ("change", "diff"),
    [("ADD COLUMN extra INT", "added: extra"), ("DROP COLUMN payload", "dropped: payload")],
)
async def test_columns_changing_between_pages_raise_schema_changed(
    filled: str, sql: SQL, engine: str, change: str, diff: str
) -> None:
    async with MySQLConnector(mysql_config_for(source_conf={"engine": engine})) as conn:
        reader = conn.read(filled, ReadOptions(paginate_read_num=1_000, async_load=False))
        async with reader:
            first = await reader.__anext__()
            sql(f"ALTER TABLE `{filled}` {change}")
            with pytest.raises(SchemaChanged) as info:
                await reader.__anext__()
        cursor = reader.cursor
        # the documented way on: a new read from the cursor, with the new columns
        rest = joined(await collect(conn.read(filled, ReadOptions(resume_from=cursor))))
    message = str(info.value)
    assert "\n" not in message and diff in message and f"table {filled}" in message
    assert "resume_from=reader.cursor" in message
    assert len(first) == 1_000 and cursor == 1_000 and rest["id"].tolist() == list(range(1_001, 3_001))


async def test_connectorx_errors_never_show_the_password(sql: SQL, mysql_config: ConnectionConfig) -> None:
    user, password = "atom_cx_user", "s3cret:/@%?#pw"
    sql(f"CREATE USER IF NOT EXISTS '{user}'@'%%' IDENTIFIED BY %s", (password,))
    sql(f"CREATE USER IF NOT EXISTS '{user}'@'localhost' IDENTIFIED BY %s", (password,))
    try:
        for host in ("%", "localhost"):
            sql(f"GRANT SELECT ON `{mysql_config.space}`.* TO '{user}'@'{host}'")
        conn = MySQLConnector(replace(mysql_config, account=user, password=password))
        bulk = conn._bulk
        assert isinstance(bulk, BulkEngine)
        assert len(bulk.fetch("SELECT 1 AS one")) == 1  # the encoded credentials work
        with pytest.raises(TargetNotFound) as info:
            bulk.fetch("SELECT * FROM atom_no_such_table_x")
        text = "".join(traceback.format_exception(info.value)) + repr(info.value) + repr(bulk)
        for form in (password, "s3cret%3A%2F%40%25%3F%23pw"):
            assert form not in text
        assert info.value.__cause__ is None and info.value.__suppress_context__
        assert "atom_no_such_table_x" in str(info.value)
    finally:
        sql(f"DROP USER IF EXISTS '{user}'@'%'")
        sql(f"DROP USER IF EXISTS '{user}'@'localhost'")


async def test_unix_socket_reads_use_connectorx(filled: str, sql: SQL, caplog: Any) -> None:
    path = MYSQL_SOCKET or sql("SELECT @@socket")[0][0]
    if not path or not os.path.exists(path):  # noqa: ASYNC240 - a test's set-up check
        pytest.skip(f"the server's socket {path!r} is not on this machine")
    caplog.set_level(logging.DEBUG, logger="connectors.mysql")
    config = mysql_config_for(
        addr="nowhere.invalid", source_conf={"engine": "connectorx", "unix_socket": path}
    )
    async with MySQLConnector(config) as conn:
        got = joined(await collect(conn.read(filled, ReadOptions(paginate_read_num=1_000))))
    assert got["id"].tolist() == list(range(1, 3001))
    assert [
        r for r in caplog.records if r.pathname.endswith("_mysql_bulk.py")
    ]  # pages came through connectorx
