"""Fixtures for connector tests: a real MariaDB/MySQL (skipped with a reason when absent), table names.

The server is 127.0.0.1:3306 (root, no password, database `test`) unless the ATOM_TEST_MYSQL_*
variables say otherwise; ATOM_TEST_MYSQL_SOCKET (set when CI started a private server) makes
every connection, the connector's included, go through that unix socket.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from connectors import ConnectionConfig
from tests.connectors.http_server import FileServer

MYSQL_HOST = os.environ.get("ATOM_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("ATOM_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("ATOM_TEST_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("ATOM_TEST_MYSQL_PASSWORD", "")
MYSQL_DB = os.environ.get("ATOM_TEST_MYSQL_DB", "test")
MYSQL_SOCKET = os.environ.get("ATOM_TEST_MYSQL_SOCKET") or None


def mysql_where() -> dict[str, Any]:
    """pymysql keyword arguments that reach the test server (socket or TCP)."""
    if MYSQL_SOCKET:
        return {"unix_socket": MYSQL_SOCKET}
    return {"host": MYSQL_HOST, "port": MYSQL_PORT}


def admin_connect(**extra: Any) -> Any:
    """A fresh autocommit pymysql connection to the test database."""
    kwargs: dict[str, Any] = {
        "user": MYSQL_USER,
        "password": MYSQL_PASSWORD,
        "database": MYSQL_DB,
        "connect_timeout": 3,
        "autocommit": True,
        **mysql_where(),
    }
    kwargs.update(extra)
    return pymysql.connect(**kwargs)


def mysql_config_for(**changes: Any) -> ConnectionConfig:
    """The connector config of the test server, with `changes` applied (source_conf merged)."""
    conf: dict[str, Any] = {"connect_timeout": 3}
    if MYSQL_SOCKET:
        conf["unix_socket"] = MYSQL_SOCKET
    conf.update(changes.pop("source_conf", {}))
    base: dict[str, Any] = {
        "addr": MYSQL_HOST,
        "port": MYSQL_PORT,
        "account": MYSQL_USER,
        "password": MYSQL_PASSWORD,
        "space": MYSQL_DB,
    }
    base.update(changes)
    return ConnectionConfig("MYSQL", source_conf=conf, **base)


@pytest.fixture(scope="session")
def mysql_admin() -> Iterator[Any]:
    """A plain pymysql connection for setup and checks; skips the test when no server answers."""
    try:
        conn = admin_connect()
    except pymysql.MySQLError as exc:
        where = MYSQL_SOCKET or f"{MYSQL_HOST}:{MYSQL_PORT}"
        pytest.skip(f"MariaDB/MySQL at {where} db {MYSQL_DB!r} unreachable ({exc}); start it")
    yield conn
    conn.close()


@pytest.fixture
def sql(mysql_admin: Any) -> Callable[..., list[tuple[Any, ...]]]:
    """Run one statement on the admin connection; returns the rows."""

    def run(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        mysql_admin.ping()
        with mysql_admin.cursor() as cur:
            cur.execute(statement, params)
            return list(cur.fetchall())

    return run


@pytest.fixture
def mysql_config(mysql_admin: Any) -> ConnectionConfig:
    return mysql_config_for()


@pytest.fixture
def table_name(mysql_admin: Any) -> Iterator[str]:
    """A fresh table name (`atom_t_<hex>`); the table (and any staging left over) is dropped after."""
    name = f"atom_t_{uuid.uuid4().hex[:10]}"
    yield name
    mysql_admin.ping()
    with mysql_admin.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{name}`")
        cur.execute("SHOW TABLES LIKE %s", (f"\\_atom\\_%{name}%",))
        for (left,) in cur.fetchall():
            cur.execute(f"DROP TABLE IF EXISTS `{left}`")


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """The directory the local HTTP test server serves (empty; tests put their files there)."""
    path = tmp_path / "served"
    path.mkdir()
    return path


@pytest.fixture
def server(served: Path) -> Iterator[FileServer]:
    """A running HTTP `FileServer` over `served` (ranges, ETags, fault knobs), stopped after the test."""
    with FileServer(served) as srv:
        yield srv
