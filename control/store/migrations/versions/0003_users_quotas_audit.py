"""users, tokens, members, quotas, reservations, audit, service keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 14:44:34.581107

Users get a password hash, an admin flag and a state; tokens a scope, the spaces they reach,
and a revocation time; `space_members` gives users roles in spaces; spaces get CPU / GPU /
memory quotas held by `reservations` (try-confirm-cancel); `audit_events` records who did
what; services get their own inference key and a public flag.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column(
            "at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column("space_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_space_id"), ["space_id"], unique=False)

    op.create_table(
        "space_members",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("space_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["space_id"], ["spaces.id"], name=op.f("fk_space_members_space_id_spaces"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_space_members_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_space_members")),
        sa.UniqueConstraint("space_id", "user_id", name=op.f("uq_space_members_space_id")),
    )
    with op.batch_alter_table("space_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_space_members_space_id"), ["space_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_space_members_user_id"), ["user_id"], unique=False)

    op.create_table(
        "reservations",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("runtime_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("space_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("gpu", sa.BigInteger(), nullable=False),
        sa.Column("memory", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["runtime_id"],
            ["runtimes.id"],
            name=op.f("fk_reservations_runtime_id_runtimes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["space_id"], ["spaces.id"], name=op.f("fk_reservations_space_id_spaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
        sa.UniqueConstraint("runtime_id", name=op.f("uq_reservations_runtime_id")),
    )
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reservations_space_id"), ["space_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reservations_state"), ["state"], unique=False)

    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.add_column(sa.Column("api_key_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("public", sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table("spaces", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quota_cpu", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("quota_gpu", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("quota_memory", sa.Integer(), nullable=True))

    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.String(length=16), nullable=False, server_default="write"))
        batch_op.add_column(sa.Column("spaces", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "revoked_at",
                sa.DateTime()
                .with_variant(mysql.DATETIME(fsp=6), "mariadb")
                .with_variant(mysql.DATETIME(fsp=6), "mysql"),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "last_used_at",
                sa.DateTime()
                .with_variant(mysql.DATETIME(fsp=6), "mariadb")
                .with_variant(mysql.DATETIME(fsp=6), "mysql"),
                nullable=True,
            )
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_hash", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("state", sa.String(length=16), nullable=False, server_default="ACTIVE"))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("state")
        batch_op.drop_column("is_admin")
        batch_op.drop_column("password_hash")

    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("spaces")
        batch_op.drop_column("scope")

    with op.batch_alter_table("spaces", schema=None) as batch_op:
        batch_op.drop_column("quota_memory")
        batch_op.drop_column("quota_gpu")
        batch_op.drop_column("quota_cpu")

    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_column("public")
        batch_op.drop_column("api_key_hash")

    op.drop_table("reservations")
    op.drop_table("space_members")
    op.drop_table("audit_events")
