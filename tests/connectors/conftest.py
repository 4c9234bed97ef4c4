"""Fixtures for connector tests: a real MariaDB/MySQL (skipped with a reason when absent), table names."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest

from connectors import ConnectionConfig

MYSQL_HOST = os.environ.get("ATOM_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("ATOM_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("ATOM_TEST_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("ATOM_TEST_MYSQL_PASSWORD", "")
MYSQL_DB = os.environ.get("ATOM_TEST_MYSQL_DB", "test")


def _admin_connect() -> Any:
    return pymysql.connect(
        host=MYSQL_HOST,
        port=MYSQL_PORT,
        user=MYSQL_USER,
        password=MYSQL_PASSWORD,
        database=MYSQL_DB,
        connect_timeout=2,
        autocommit=True,
    )


@pytest.fixture(scope="session")
def mysql_admin() -> Iterator[Any]:
    """A plain pymysql connection for setup and checks; skips the test when no server answers."""
    try:
        conn = _admin_connect()
    except pymysql.MySQLError as exc:
        pytest.skip(
            f"MariaDB/MySQL at {MYSQL_HOST}:{MYSQL_PORT} db {MYSQL_DB!r} unreachable ({exc}); start it"
        )
    yield conn
    conn.close()


@pytest.fixture
def sql(mysql_admin: Any) -> Callable[..., list[tuple[Any, ...]]]:
    """Run one statement on the admin connection; returns the rows."""

    def run(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with mysql_admin.cursor() as cur:
            cur.execute(statement, params)
            return list(cur.fetchall())

    return run


@pytest.fixture
def mysql_config(mysql_admin: Any) -> ConnectionConfig:
    return ConnectionConfig(
        "MYSQL",
        addr=MYSQL_HOST,
        port=MYSQL_PORT,
        account=MYSQL_USER,
        password=MYSQL_PASSWORD,
        space=MYSQL_DB,
        source_conf={"connect_timeout": 3},
    )


@pytest.fixture
def table_name(mysql_admin: Any) -> Iterator[str]:
    """A fresh table name (`atom_t_<hex>`); the table is dropped after the test."""
    name = f"atom_t_{uuid.uuid4().hex[:10]}"
    yield name
    with mysql_admin.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{name}`")
