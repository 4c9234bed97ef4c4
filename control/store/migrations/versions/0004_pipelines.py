"""pipelines: edges, exam runs, attempts, artifacts, trials, schedules

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 17:15:15.421054

`node_edges` gives a node several next nodes (fan-out) and several parents (fan-in); nodes get
a trigger rule, a cacheable flag and inputs naming upstream artifacts; operators a search
space. `exam_runs` records each launch of an exam (by hand, schedule or backfill);
`run_attempts` each try of a run; `run_artifacts` what a run left; `run_trials` the trials
of a hyper-parameter search; `exam_schedules` cron schedules. Runs get their attempt limit,
next retry time, failure class, exam run and cache key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exam_runs",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("space_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("exam_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("exam_name", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("schedule_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "logical_date",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("resumes", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "finished_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(["space_id"], ["spaces.id"], name=op.f("fk_exam_runs_space_id_spaces")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_runs")),
        sa.UniqueConstraint("schedule_id", "logical_date", name=op.f("uq_exam_runs_schedule_id")),
    )
    with op.batch_alter_table("exam_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exam_runs_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_exam_runs_exam_id"), ["exam_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_exam_runs_schedule_id"), ["schedule_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_exam_runs_space_id"), ["space_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_exam_runs_state"), ["state"], unique=False)

    op.create_table(
        "exam_schedules",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("space_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("exam_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("cron", sa.String(length=128), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column(
            "start_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "end_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column("concurrency", sa.String(length=8), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "next_fire_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "last_fire_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
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
            ["exam_id"], ["exams.id"], name=op.f("fk_exam_schedules_exam_id_exams"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["space_id"], ["spaces.id"], name=op.f("fk_exam_schedules_space_id_spaces")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exam_schedules")),
        sa.UniqueConstraint("exam_id", name=op.f("uq_exam_schedules_exam_id")),
    )
    with op.batch_alter_table("exam_schedules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exam_schedules_next_fire_at"), ["next_fire_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_exam_schedules_space_id"), ["space_id"], unique=False)

    op.create_table(
        "node_edges",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("from_node_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("to_node_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["from_node_id"], ["nodes.id"], name=op.f("fk_node_edges_from_node_id_nodes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["to_node_id"], ["nodes.id"], name=op.f("fk_node_edges_to_node_id_nodes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_edges")),
        sa.UniqueConstraint("from_node_id", "to_node_id", name=op.f("uq_node_edges_from_node_id")),
    )
    with op.batch_alter_table("node_edges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_node_edges_from_node_id"), ["from_node_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_node_edges_to_node_id"), ["to_node_id"], unique=False)

    op.create_table(
        "run_artifacts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("runtime_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("uri", sa.String(length=1024), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("reused_from", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["runtime_id"],
            ["runtimes.id"],
            name=op.f("fk_run_artifacts_runtime_id_runtimes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_artifacts")),
        sa.UniqueConstraint("runtime_id", "name", name=op.f("uq_run_artifacts_runtime_id")),
    )
    with op.batch_alter_table("run_artifacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_artifacts_runtime_id"), ["runtime_id"], unique=False)

    op.create_table(
        "run_attempts",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("runtime_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("failure_class", sa.String(length=16), nullable=True),
        sa.Column("retryable", sa.Boolean(), nullable=False),
        sa.Column("log_path", sa.String(length=1024), nullable=False),
        sa.Column("adapter", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column(
            "started_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "finished_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["runtime_id"],
            ["runtimes.id"],
            name=op.f("fk_run_attempts_runtime_id_runtimes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_attempts")),
        sa.UniqueConstraint("runtime_id", "attempt", name=op.f("uq_run_attempts_runtime_id")),
    )
    with op.batch_alter_table("run_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_attempts_runtime_id"), ["runtime_id"], unique=False)

    op.create_table(
        "run_trials",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("runtime_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("best", sa.Boolean(), nullable=False),
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
            name=op.f("fk_run_trials_runtime_id_runtimes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_trials")),
        sa.UniqueConstraint("runtime_id", "trial_id", name=op.f("uq_run_trials_runtime_id")),
    )
    with op.batch_alter_table("run_trials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_trials_runtime_id"), ["runtime_id"], unique=False)

    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("trigger_rule", sa.String(length=16), nullable=False, server_default="all_success")
        )
        batch_op.add_column(sa.Column("cacheable", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("inputs", sa.JSON(), nullable=True))
    op.execute("UPDATE nodes SET inputs = '{}'")  # JSON columns take no server default on MySQL
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.alter_column("inputs", existing_type=sa.JSON(), nullable=False)

    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.add_column(sa.Column("search_conf", sa.JSON(), nullable=True))
    op.execute("UPDATE operators SET search_conf = '{}'")
    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.alter_column("search_conf", existing_type=sa.JSON(), nullable=False)

    # a run created before attempts were counted per run: its recorded attempt is its only one
    with op.batch_alter_table("runtimes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(
            sa.Column(
                "retry_at",
                sa.DateTime()
                .with_variant(mysql.DATETIME(fsp=6), "mariadb")
                .with_variant(mysql.DATETIME(fsp=6), "mysql"),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("failure_class", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("exam_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
        batch_op.add_column(sa.Column("cache_key", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_runtimes_cache_key"), ["cache_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_runtimes_exam_run_id"), ["exam_run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runtimes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runtimes_exam_run_id"))
        batch_op.drop_index(batch_op.f("ix_runtimes_cache_key"))
        batch_op.drop_column("cache_key")
        batch_op.drop_column("exam_run_id")
        batch_op.drop_column("failure_class")
        batch_op.drop_column("retry_at")
        batch_op.drop_column("max_attempts")

    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.drop_column("search_conf")

    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_column("inputs")
        batch_op.drop_column("cacheable")
        batch_op.drop_column("trigger_rule")

    op.drop_table("run_trials")
    op.drop_table("run_attempts")
    op.drop_table("run_artifacts")
    op.drop_table("node_edges")
    op.drop_table("exam_schedules")
    op.drop_table("exam_runs")
