"""Control fixtures: the real app in-process over ASGI, on SQLite and on MariaDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from control.api.app import create_app
from control.settings import Settings
from tests.conftest import mysql_url

#: test modules that also run on MariaDB: where the store's dialect changes what happens (column
#: sizes and number ranges, locks and unique-key races, JSON, collations, migrations, half-done
#: writes). The other modules test API and engine logic over the same ORM and run on SQLite.
MARIADB_MODULES = frozenset(
    {
        "test_api_limits",
        "test_audit",
        "test_code_store",
        "test_dag",
        "test_field_errors",
        "test_fuzz_writes",
        "test_migrations",
        "test_quota",
        "test_reconcile_orphans",
        "test_runs_list",
        "test_schedules",
        "test_schemathesis",
        "test_tenancy",
        "test_users_api",
    }
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`db_url` is SQLite everywhere, and MariaDB too in `MARIADB_MODULES`."""
    if "db_url" not in metafunc.fixturenames:
        return
    backends: list[object] = ["sqlite"]
    if metafunc.module.__name__.rsplit(".", 1)[-1] in MARIADB_MODULES:
        backends.append(pytest.param("mysql", marks=pytest.mark.mysql))
    metafunc.parametrize("db_url", backends, indirect=True)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'atom.db'}"
    return mysql_url(request.getfixturevalue("mysql_database"))


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(home=tmp_path / "home", db_url=db_url, heartbeat_timeout=30, reconcile_interval=0.2)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings, reconcile=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://control") as client:
        yield client
