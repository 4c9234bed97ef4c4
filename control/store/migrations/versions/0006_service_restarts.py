"""services.restarts and mirror_percent, and service_fronts: a model's stable endpoint

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 03:00:00.000000

A ready service whose process dies is started again by the reconcile loop, up to
`ATOM_SERVICE_RESTARTS` times; the count is kept on the service and shown with it. A version
may be a mirror candidate: `mirror_percent` of its model's requests are copied to it. A model's
ready local versions are reached through one routing front (`service_fronts`, one per model and
space), which splits the requests by the versions' weights.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MICROS = mysql.DATETIME(fsp=6)
STAMP = sa.DateTime().with_variant(MICROS, "mariadb").with_variant(MICROS, "mysql")


def upgrade() -> None:
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.add_column(sa.Column("restarts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("mirror_percent", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("weight_since", STAMP, nullable=True))
    op.create_table(
        "service_fronts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("space_id", ID, nullable=True),
        sa.Column("model_id", ID, nullable=False),
        sa.Column("front_name", sa.String(length=63), nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("endpoint", sa.String(length=512), nullable=True),
        sa.Column("adapter", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("token_enc", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_service_fronts_model_id_models")),
        sa.ForeignKeyConstraint(["space_id"], ["spaces.id"], name=op.f("fk_service_fronts_space_id_spaces")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_fronts")),
        sa.UniqueConstraint("space_id", "model_id", name=op.f("uq_service_fronts_space_id")),
    )
    with op.batch_alter_table("service_fronts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_fronts_model_id"), ["model_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_fronts_space_id"), ["space_id"], unique=False)


def downgrade() -> None:
    op.drop_table("service_fronts")  # its indexes go with it
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_column("weight_since")
        batch_op.drop_column("mirror_percent")
        batch_op.drop_column("restarts")
