"""per-source progress, exam launches, runs list indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:00:00.000000

`runtimes.source_progress` keeps the agent's latest per-source counts; `exam_id` and
`upstream_run_ids` record an exam launch so queued downstream runs survive a control
restart; `ix_runtimes_node_name` serves the runs list's node filter and sort.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runtimes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_progress", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("exam_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
        batch_op.add_column(sa.Column("upstream_run_ids", sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f("ix_runtimes_exam_id"), ["exam_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_runtimes_node_name"), ["node_name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runtimes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runtimes_node_name"))
        batch_op.drop_index(batch_op.f("ix_runtimes_exam_id"))
        batch_op.drop_column("upstream_run_ids")
        batch_op.drop_column("exam_id")
        batch_op.drop_column("source_progress")
