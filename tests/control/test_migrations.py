"""The Alembic history builds exactly the ORM's schema, on SQLite and MariaDB, and 0002 steps down and up."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select

from control.store import models as m
from control.store.engine import MIGRATIONS, Store
from control.store.models import Base


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _alembic(store: Store, target: str, *, down: bool = False) -> None:
    cfg = _config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, target)


def _diff(store: Store) -> list[object]:
    with store.engine.connect() as conn:
        return list(
            compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        )


def test_migrations_match_the_models(db_url: str) -> None:
    store = Store(db_url, migrate=False)
    try:
        _alembic(store, "head")  # every migration, for real (not the tests' schema template)
        assert _diff(store) == []
        columns = {c["name"] for c in inspect(store.engine).get_columns("runtimes")}
        assert {"source_progress", "exam_id", "upstream_run_ids"} <= columns
        _alembic(store, "0001", down=True)  # through 0003 and 0002
        columns = {c["name"] for c in inspect(store.engine).get_columns("runtimes")}
        assert "exam_id" not in columns
        _alembic(store, "head")
        indexes = {i["name"] for i in inspect(store.engine).get_indexes("runtimes")}
        assert {"ix_runtimes_node_name", "ix_runtimes_exam_id"} <= indexes
    finally:
        store.dispose()


def test_a_store_started_from_the_tests_schema_template_is_the_migrated_one(db_url: str) -> None:
    store = Store(db_url)  # empty: `tests.schema_templates` gives it the template's schema
    try:
        assert _diff(store) == []
        with store.engine.connect() as conn:
            assert (
                MigrationContext.configure(conn).get_current_revision()
                == ScriptDirectory.from_config(_config()).get_current_head()
            )
    finally:
        store.dispose()


def test_0005_copies_each_runs_upstream_list_into_rows(db_url: str) -> None:
    store = Store(db_url, migrate=False)
    try:
        _alembic(store, "0004")
        with store.transaction() as ses:  # runtimes has the same columns at 0004 as now
            made = []
            for name in ("a", "b", "c"):
                run = m.Runtime(
                    node_name=name, operator_runtime_type="PYTHON_DATA", spec={}, exam_id=1, token_hash="x"
                )
                ses.add(run)
                ses.flush()
                made.append(run.id)
            a, b, c = made
            ses.get(m.Runtime, b).upstream_run_ids = [a]  # type: ignore[union-attr]
            ses.get(m.Runtime, c).upstream_run_ids = [a, b, a]  # type: ignore[union-attr]
        _alembic(store, "head")
        with store.transaction() as ses:
            rows = set(ses.execute(select(m.RunUpstream.runtime_id, m.RunUpstream.upstream_id)).all())
        assert rows == {(b, a), (c, a), (c, b)}
        _alembic(store, "0004", down=True)
        assert "run_upstreams" not in inspect(store.engine).get_table_names()
    finally:
        store.dispose()
