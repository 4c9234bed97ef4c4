"""Alembic environment: runs on the connection `control.store.engine.upgrade` hands over."""

from __future__ import annotations

from alembic import context

from control.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` CLI: build an engine from the config's URL
    from control.store.engine import make_engine

    connection = make_engine(context.config.get_main_option("sqlalchemy.url") or "").connect()

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
