"""Shared test set-up: a clean ATOM_* environment, Ray without auth, and real MariaDB databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests import schema_templates

#: the Kubernetes API stand-in (kube_api, kubeconfig, kube_client); the check for leaked servers
pytest_plugins = ["tests.k8s_sim.fixtures", "tests.leftover_servers"]

MYSQL_HOST = os.environ.get("ATOM_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("ATOM_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("ATOM_TEST_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("ATOM_TEST_MYSQL_PASSWORD", "")
MYSQL_SOCKET = os.environ.get("ATOM_TEST_MYSQL_SOCKET")

schema_templates.install()  # an empty store starts from a schema migrated once per test process

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def mysql_connect(database: str | None = None):  # type: ignore[no-untyped-def]
    import pymysql

    kwargs = {"user": MYSQL_USER, "password": MYSQL_PASSWORD, "database": database, "connect_timeout": 3}
    if MYSQL_SOCKET:
        return pymysql.connect(unix_socket=MYSQL_SOCKET, **kwargs)
    return pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, **kwargs)


def mysql_available() -> str | None:
    """None when MariaDB answers, else why not."""
    try:
        mysql_connect().close()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"MariaDB/MySQL at {MYSQL_HOST}:{MYSQL_PORT} is not reachable: {exc}"
    return None


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's ATOM_* settings."""
    for key in list(os.environ):
        if key.startswith("ATOM_") and not key.startswith("ATOM_TEST_"):
            monkeypatch.delenv(key)


@pytest.fixture
def mysql_database() -> Iterator[str]:
    """A fresh, empty MariaDB database for one test; dropped afterwards."""
    why = mysql_available()
    if why:
        pytest.skip(why)
    name = f"atom_t_{uuid.uuid4().hex[:10]}"
    conn = mysql_connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def mysql_url(database: str) -> str:
    if MYSQL_SOCKET:
        return (
            f"mysql+pymysql://{MYSQL_USER}:{MYSQL_PASSWORD}@localhost/{database}?unix_socket={MYSQL_SOCKET}"
        )
    return f"mysql+pymysql://{MYSQL_USER}:{MYSQL_PASSWORD}@{MYSQL_HOST}:{MYSQL_PORT}/{database}"


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """One real local Ray head for the whole session (free ports, 2 CPUs, auth disabled).

    Tests that need Ray point control or the agent at it (`ray_address` in control's settings,
    `RAY_ADDRESS` for an agent) instead of starting a Ray of their own.
    """
    from control.dispatch.ray_head import RayHead

    head = RayHead(num_cpus=2)
    head.start()
    try:
        yield head
    finally:
        head.stop()


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    """A real Docker engine shared by the session's workers (tests/docker_support.py says how);
    skips with one line only where no engine can start here."""
    from tests.docker_support import EngineUnavailable, acquire_engine, release_engine

    try:
        engine = acquire_engine()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield engine
    finally:
        release_engine(engine)


@pytest.fixture(scope="session")
def agent_image(docker_engine: Any) -> str:
    """The tag of the CPU agent image of the working tree, built from the local base once per content."""
    from tests.docker_support import ensure_agent_image

    return ensure_agent_image(docker_engine)


#: how heavy a test file is, by its marks: heavy files start first, so that the two xdist workers
#: (`--dist loadfile`) do not end with one of them running a long file while the other idles
FILE_WEIGHT = {"slow": 5, "ray": 4, "docker": 4, "k8s": 3, "e2e": 2, "tui": 1}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    weight: dict[str, int] = {}
    for item in items:
        marks = {mark.name for mark in item.iter_markers()}
        file_weight = max((FILE_WEIGHT.get(mark, 0) for mark in marks), default=0)
        weight[item.nodeid.split("::")[0]] = max(weight.get(item.nodeid.split("::")[0], 0), file_weight)
    items.sort(key=lambda item: -weight[item.nodeid.split("::")[0]])  # stable: a file keeps its order
