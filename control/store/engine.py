"""Store engine: one function per dialect (SQLite WAL by default, MySQL in production) and migrations.

The store is sync SQLAlchemy; FastAPI runs sync route functions on its thread pool,
and the reconcile loop calls the store through `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from connectors.errors import ConfigError, SourceUnavailable

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlite_engine(url: str) -> Engine:
    path = make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine


def mysql_engine(url: str) -> Engine:
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_recycle=3600,
        isolation_level="READ COMMITTED",
        connect_args={"connect_timeout": 10, "charset": "utf8mb4"},
    )


def make_engine(url: str) -> Engine:
    """Build the engine for `url`; refuse dialects Atom does not support."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return sqlite_engine(url)
    if backend in ("mysql", "mariadb"):
        return mysql_engine(url)
    raise ConfigError(f"ATOM_DB_URL {backend!r} is not supported: use sqlite:///PATH or mysql+pymysql://...")


def upgrade(engine: Engine) -> None:
    """Bring the schema to the latest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        url = engine.url.render_as_string(hide_password=True)
        raise SourceUnavailable(
            f"the control store at {url} cannot be reached ({exc.orig}): check ATOM_DB_URL"
        ) from exc


def _hold(session: Session, instance: object) -> None:
    """Keep each object a transaction loads until the session closes: the identity map holds
    objects weakly, so without this a second `session.get` of a row nobody references any more
    (the node, operator or connection of a run being bound) would read it again."""
    session.info.setdefault("held", []).append(instance)


class Store:
    """The engine and a session factory."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        if migrate:
            upgrade(self.engine)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._factory, "loaded_as_persistent", _hold)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._factory() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
