"""services.restarts and mirror_percent: restarts of a service whose process ended; mirrored share

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 03:00:00.000000

A ready service whose process dies is started again by the reconcile loop, up to
`ATOM_SERVICE_RESTARTS` times; the count is kept on the service and shown with it. A version
may be a mirror candidate: `mirror_percent` of its model's requests are copied to it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.add_column(sa.Column("restarts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("mirror_percent", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_column("mirror_percent")
        batch_op.drop_column("restarts")
