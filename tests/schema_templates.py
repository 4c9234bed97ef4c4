"""A fresh control store gets its schema from a template migrated once per test process.

Most tests start a control on an empty store (a new SQLite file, a new MariaDB database); running
every Alembic migration for each of them costs a large share of the suite. `install()` wraps
`control.store.engine.upgrade` so that an *empty* store is first given the schema of a template:

- SQLite: the template file, migrated by the real `upgrade` the first time, is copied in;
- MariaDB: the template database's `SHOW CREATE TABLE` statements (foreign keys included) are
  replayed and its `alembic_version` row written.

The real `upgrade` then runs as always (and finds the store at head). A store that already has
tables (a migration test, a restart on the same home), a store that cannot be reached, and every
control started as its own process take the real path unchanged (as does every store when
`ATOM_TEST_REAL_MIGRATIONS=1`). `tests/control/test_migrations.py`
migrates for real, and compares a migrated store with a cloned one.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from control.store import engine as store_engine

_lock = threading.Lock()
_sqlite_template: Path | None = None
_mysql_schema: tuple[list[str], str] | None = None
_real_upgrade: Callable[[Engine], None] = store_engine.upgrade


def _sqlite_path(engine: Engine) -> Path | None:
    db = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or not db or db == ":memory:":
        return None
    return Path(db)


def sqlite_template() -> Path:
    """The migrated template file (made on the first call)."""
    global _sqlite_template
    with _lock:
        if _sqlite_template is None:
            folder = tempfile.mkdtemp(prefix="atom-schema-")
            atexit.register(shutil.rmtree, folder, True)  # gone with the test process
            path = Path(folder) / "template.db"
            engine = store_engine.make_engine(f"sqlite:///{path}")
            _real_upgrade(engine)
            engine.dispose()  # the last connection folds the WAL into the file
            _sqlite_template = path
        return _sqlite_template


def mysql_schema(engine: Engine) -> tuple[list[str], str]:
    """(CREATE TABLE statements, alembic revision) of a database migrated once on `engine`'s server."""
    global _mysql_schema
    with _lock:
        if _mysql_schema is None:
            name = f"atom_tmpl_{uuid.uuid4().hex[:10]}"
            with engine.connect() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
            template = store_engine.make_engine(engine.url.set(database=name).render_as_string(False))
            try:
                _real_upgrade(template)
                with template.connect() as conn:
                    tables = inspect(conn).get_table_names()
                    ddl = [str(conn.exec_driver_sql(f"SHOW CREATE TABLE `{t}`").one()[1]) for t in tables]
                    revision = str(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar())
            finally:
                template.dispose()
                with engine.connect() as conn:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            _mysql_schema = (ddl, revision)
        return _mysql_schema


def _clone_sqlite(engine: Engine, path: Path) -> None:
    if path.exists() and path.stat().st_size > 0:
        return
    template = sqlite_template()
    engine.dispose()
    with contextlib.suppress(OSError):  # an unwritable place: the real upgrade says so
        shutil.copyfile(template, path)


def _clone_mysql(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            if inspect(conn).get_table_names():
                return
        ddl, revision = mysql_schema(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
            for statement in ddl:
                conn.exec_driver_sql(statement)
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
            conn.exec_driver_sql("DELETE FROM alembic_version")
            conn.exec_driver_sql("INSERT INTO alembic_version (version_num) VALUES (%s)", (revision,))
    except SQLAlchemyError:
        return  # unreachable, wrong password, ...: the real upgrade raises the error users see


def upgrade(engine: Engine) -> None:
    """`control.store.engine.upgrade`, starting an empty store from the template's schema."""
    path = _sqlite_path(engine)
    if path is not None:
        _clone_sqlite(engine, path)
    elif engine.url.get_backend_name() in ("mysql", "mariadb"):
        _clone_mysql(engine)
    _real_upgrade(engine)


def install() -> None:
    """Wrap `upgrade` for this process (`ATOM_TEST_REAL_MIGRATIONS=1`: every store migrates)."""
    if os.environ.get("ATOM_TEST_REAL_MIGRATIONS"):
        return
    store_engine.upgrade = upgrade  # `Store.__init__` looks it up at call time
