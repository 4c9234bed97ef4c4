"""run_upstreams: each run's upstream runs as rows

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 23:50:00.000000

The exam engine asks the store for the queued runs whose upstream runs have all ended; with the
upstream runs as indexed rows that is one query, where `runtimes.upstream_run_ids` (JSON, kept
for reading) had to be read and decoded for every waiting run on every advance. Existing runs'
lists are copied into the new table.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "run_upstreams",
        sa.Column("runtime_id", ID, nullable=False),
        sa.Column("upstream_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["runtime_id"],
            ["runtimes.id"],
            name=op.f("fk_run_upstreams_runtime_id_runtimes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("runtime_id", "upstream_id", name=op.f("pk_run_upstreams")),
    )
    with op.batch_alter_table("run_upstreams", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_upstreams_upstream_id"), ["upstream_id"], unique=False)
    conn = op.get_bind()
    rows = conn.execute(
        sa.text("SELECT id, upstream_run_ids FROM runtimes WHERE upstream_run_ids IS NOT NULL")
    ).all()
    edges = []
    for run_id, ups in rows:
        ids = json.loads(ups) if isinstance(ups, str | bytes) else ups
        edges += [{"runtime_id": run_id, "upstream_id": int(u)} for u in dict.fromkeys(ids or [])]
    if edges:
        table = sa.table("run_upstreams", sa.column("runtime_id", ID), sa.column("upstream_id", ID))
        op.bulk_insert(table, edges)


def downgrade() -> None:
    with op.batch_alter_table("run_upstreams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_upstreams_upstream_id"))
    op.drop_table("run_upstreams")
