"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 10:11:47.628420
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "spaces",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("space_name", sa.String(length=63), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "create_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "update_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spaces")),
        sa.UniqueConstraint("space_name", name=op.f("uq_spaces_space_name")),
    )
    op.create_table(
        "users",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("user_name", sa.String(length=128), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("user_name", name=op.f("uq_users_user_name")),
    )
    op.create_table(
        "connections",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("space_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("connect_name", sa.String(length=128), nullable=False),
        sa.Column("operation_type", sa.String(length=64), nullable=False),
        sa.Column("connect_type", sa.String(length=16), nullable=False),
        sa.Column("connect_addr", sa.String(length=1024), nullable=False),
        sa.Column("connect_port", sa.Integer(), nullable=True),
        sa.Column("connect_account", sa.String(length=255), nullable=False),
        sa.Column("connect_password_enc", sa.Text(), nullable=True),
        sa.Column("connect_space", sa.String(length=255), nullable=False),
        sa.Column("mode", sa.String(length=64), nullable=False),
        sa.Column("colony_type", sa.String(length=16), nullable=False),
        sa.Column("source_conf", sa.JSON(), nullable=False),
        sa.Column("source_route", sa.String(length=1024), nullable=False),
        sa.Column("source_size", sa.String(length=64), nullable=False),
        sa.Column("source_count", sa.BigInteger(), nullable=False),
        sa.Column(
            "create_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "update_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["space_id"], ["spaces.id"], name=op.f("fk_connections_space_id_spaces")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connections")),
        sa.UniqueConstraint("space_id", "connect_name", name=op.f("uq_connections_space_id")),
    )
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_connections_space_id"), ["space_id"], unique=False)

    op.create_table(
        "experiments",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("space_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("experiment_name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "create_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "update_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["space_id"], ["spaces.id"], name=op.f("fk_experiments_space_id_spaces")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
        sa.UniqueConstraint("space_id", "experiment_name", name=op.f("uq_experiments_space_id")),
    )
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_experiments_space_id"), ["space_id"], unique=False)

    op.create_table(
        "operators",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("space_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("operator_name", sa.String(length=128), nullable=False),
        sa.Column("operator_template_id", sa.BigInteger(), nullable=True),
        sa.Column("operator_source_id", sa.BigInteger(), nullable=True),
        sa.Column("operator_source_type", sa.String(length=16), nullable=False),
        sa.Column("operator_runtime_type", sa.String(length=16), nullable=False),
        sa.Column("operator_model", sa.String(length=16), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("resources_account_id", sa.BigInteger(), nullable=True),
        sa.Column("code_mode", sa.String(length=32), nullable=False),
        sa.Column("code_address", sa.String(length=1024), nullable=False),
        sa.Column("code_version", sa.String(length=64), nullable=False),
        sa.Column("module_name", sa.String(length=255), nullable=False),
        sa.Column("execute_object", sa.String(length=128), nullable=False),
        sa.Column("operator_conf", sa.JSON(), nullable=False),
        sa.Column("environment_conf", sa.JSON(), nullable=False),
        sa.Column("model_conf", sa.JSON(), nullable=False),
        sa.Column("operator_epoch", sa.Integer(), nullable=False),
        sa.Column("operator_plan_runtimes", sa.String(length=64), nullable=False),
        sa.Column("operator_priority", sa.Integer(), nullable=False),
        sa.Column("deploy_type", sa.String(length=16), nullable=False),
        sa.Column(
            "create_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "update_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["space_id"], ["spaces.id"], name=op.f("fk_operators_space_id_spaces")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("space_id", "operator_name", name=op.f("uq_operators_space_id")),
    )
    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_operators_space_id"), ["space_id"], unique=False)

    op.create_table(
        "service_infos",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("space_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("si_name", sa.String(length=128), nullable=False),
        sa.Column("si_type", sa.String(length=64), nullable=False),
        sa.Column("si_runtime_pattern", sa.String(length=16), nullable=False),
        sa.Column("si_node_num", sa.Integer(), nullable=False),
        sa.Column("si_image_name", sa.String(length=512), nullable=False),
        sa.Column("si_cpu", sa.Integer(), nullable=False),
        sa.Column("si_gpu", sa.Integer(), nullable=False),
        sa.Column("si_memory", sa.Integer(), nullable=False),
        sa.Column("si_display_memory", sa.Integer(), nullable=False),
        sa.Column("si_label", sa.String(length=255), nullable=False),
        sa.Column(
            "create_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "update_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["space_id"], ["spaces.id"], name=op.f("fk_service_infos_space_id_spaces")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_infos")),
        sa.UniqueConstraint("space_id", "si_name", name=op.f("uq_service_infos_space_id")),
    )
    with op.batch_alter_table("service_infos", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_infos_space_id"), ["space_id"], unique=False)

    op.create_table(
        "tokens",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token_name", sa.String(length=128), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "expires_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_tokens_token_hash")),
    )
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "data_sources",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("space_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source_name", sa.String(length=128), nullable=False),
        sa.Column("connection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source_type", sa.String(length=16), nullable=False),
        sa.Column("source_space", sa.String(length=255), nullable=False),
        sa.Column("source_conf", sa.JSON(), nullable=False),
        sa.Column("task_init_execute", sa.Text(), nullable=False),
        sa.Column("operate_execute_before", sa.Text(), nullable=False),
        sa.Column("data_execute_before", sa.Text(), nullable=False),
        sa.Column("operate_execute", sa.Text(), nullable=False),
        sa.Column("data_execute_after", sa.Text(), nullable=False),
        sa.Column("operate_execute_after", sa.Text(), nullable=False),
        sa.Column("data_format", sa.String(length=32), nullable=False),
        sa.Column("operator_read_num", sa.Integer(), nullable=False),
        sa.Column("connect_read_num", sa.Integer(), nullable=False),
        sa.Column("paginate_read_num", sa.Integer(), nullable=False),
        sa.Column("disposable", sa.Boolean(), nullable=False),
        sa.Column("async_load", sa.Boolean(), nullable=False),
        sa.Column("order", sa.Integer(), nullable=False),
        sa.Column(
            "create_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "update_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connections.id"], name=op.f("fk_data_sources_connection_id_connections")
        ),
        sa.ForeignKeyConstraint(["space_id"], ["spaces.id"], name=op.f("fk_data_sources_space_id_spaces")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_sources")),
        sa.UniqueConstraint("space_id", "source_name", name=op.f("uq_data_sources_space_id")),
    )
    with op.batch_alter_table("data_sources", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_sources_connection_id"), ["connection_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_data_sources_space_id"), ["space_id"], unique=False)

    op.create_table(
        "exams",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("space_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("experiment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("exam_name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "create_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "update_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiments.id"], name=op.f("fk_exams_experiment_id_experiments")
        ),
        sa.ForeignKeyConstraint(["space_id"], ["spaces.id"], name=op.f("fk_exams_space_id_spaces")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exams")),
        sa.UniqueConstraint("space_id", "exam_name", name=op.f("uq_exams_space_id")),
    )
    with op.batch_alter_table("exams", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exams_experiment_id"), ["experiment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_exams_space_id"), ["space_id"], unique=False)

    op.create_table(
        "models",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("space_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("node_id", sa.BigInteger(), nullable=True),
        sa.Column("runtime_id", sa.BigInteger(), nullable=True),
        sa.Column("operator_id", sa.BigInteger(), nullable=True),
        sa.Column("model_create_type", sa.String(length=16), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("model_score", sa.Float(), nullable=False),
        sa.Column("model_type", sa.String(length=16), nullable=False),
        sa.Column("model_technology_type", sa.String(length=16), nullable=False),
        sa.Column("model_address", sa.String(length=1024), nullable=False),
        sa.Column("model_status", sa.String(length=32), nullable=False),
        sa.Column("connect_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("connect_status", sa.String(length=32), nullable=False),
        sa.Column("operator_result", sa.String(length=24), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_value", sa.String(length=255), nullable=False),
        sa.Column("resource_size", sa.String(length=64), nullable=False),
        sa.Column("produce_way", sa.String(length=64), nullable=False),
        sa.Column(
            "create_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "update_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["connect_id"], ["connections.id"], name=op.f("fk_models_connect_id_connections")
        ),
        sa.ForeignKeyConstraint(["space_id"], ["spaces.id"], name=op.f("fk_models_space_id_spaces")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("space_id", "model_name", name=op.f("uq_models_space_id")),
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_models_connect_id"), ["connect_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_models_space_id"), ["space_id"], unique=False)

    op.create_table(
        "model_versions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("model_score", sa.Float(), nullable=False),
        sa.Column("model_address", sa.String(length=1024), nullable=False),
        sa.Column("runtime_id", sa.BigInteger(), nullable=True),
        sa.Column("operator_result", sa.String(length=24), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("serving_object", sa.String(length=255), nullable=True),
        sa.Column(
            "create_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_model_versions_model_id_models")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("model_id", "model_version", name=op.f("uq_model_versions_model_id")),
        sa.UniqueConstraint("runtime_id", name=op.f("uq_model_versions_runtime_id")),
    )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_versions_model_id"), ["model_id"], unique=False)

    op.create_table(
        "nodes",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("space_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("exam_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("node_name", sa.String(length=63), nullable=False),
        sa.Column("node_template_id", sa.BigInteger(), nullable=True),
        sa.Column("operator_source_type", sa.String(length=16), nullable=False),
        sa.Column("operator_runtime_type", sa.String(length=16), nullable=False),
        sa.Column("node_model", sa.String(length=16), nullable=False),
        sa.Column("node_epoch", sa.Integer(), nullable=False),
        sa.Column("node_plan_runtimes", sa.String(length=64), nullable=False),
        sa.Column("node_status", sa.String(length=16), nullable=False),
        sa.Column("operator_priority", sa.Integer(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column(
            "create_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "update_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["exam_id"], ["exams.id"], name=op.f("fk_nodes_exam_id_exams")),
        sa.ForeignKeyConstraint(["space_id"], ["spaces.id"], name=op.f("fk_nodes_space_id_spaces")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
        sa.UniqueConstraint("space_id", "node_name", name=op.f("uq_nodes_space_id")),
    )
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nodes_exam_id"), ["exam_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_nodes_space_id"), ["space_id"], unique=False)

    op.create_table(
        "node_relations",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("node_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("next_node_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("operator_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("service_info_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("max_service_info_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("min_service_info_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "create_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "update_time",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["max_service_info_id"],
            ["service_infos.id"],
            name=op.f("fk_node_relations_max_service_info_id_service_infos"),
        ),
        sa.ForeignKeyConstraint(
            ["min_service_info_id"],
            ["service_infos.id"],
            name=op.f("fk_node_relations_min_service_info_id_service_infos"),
        ),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_node_relations_model_id_models")),
        sa.ForeignKeyConstraint(
            ["next_node_id"], ["nodes.id"], name=op.f("fk_node_relations_next_node_id_nodes")
        ),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_node_relations_node_id_nodes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_node_relations_operator_id_operators")
        ),
        sa.ForeignKeyConstraint(
            ["service_info_id"],
            ["service_infos.id"],
            name=op.f("fk_node_relations_service_info_id_service_infos"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_relations")),
        sa.UniqueConstraint("node_id", name=op.f("uq_node_relations_node_id")),
    )
    with op.batch_alter_table("node_relations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_node_relations_operator_id"), ["operator_id"], unique=False)

    op.create_table(
        "runtimes",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("space_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("node_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("node_name", sa.String(length=63), nullable=False),
        sa.Column("operator_runtime_type", sa.String(length=16), nullable=False),
        sa.Column("adapter", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=True),
        sa.Column("stage", sa.String(length=64), nullable=True),
        sa.Column("rows_read", sa.BigInteger(), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("envs", sa.JSON(), nullable=False),
        sa.Column("run_parameter", sa.JSON(), nullable=False),
        sa.Column("log_path", sa.String(length=1024), nullable=False),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.Column(
            "started_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "finished_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "heartbeat_at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name=op.f("fk_runtimes_node_id_nodes")),
        sa.ForeignKeyConstraint(["space_id"], ["spaces.id"], name=op.f("fk_runtimes_space_id_spaces")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtimes")),
    )
    with op.batch_alter_table("runtimes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runtimes_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_runtimes_node_id"), ["node_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_runtimes_space_id"), ["space_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_runtimes_state"), ["state"], unique=False)

    op.create_table(
        "node_relation_sources",
        sa.Column("relation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("data_source_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["data_source_id"],
            ["data_sources.id"],
            name=op.f("fk_node_relation_sources_data_source_id_data_sources"),
        ),
        sa.ForeignKeyConstraint(
            ["relation_id"],
            ["node_relations.id"],
            name=op.f("fk_node_relation_sources_relation_id_node_relations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("relation_id", "data_source_id", name=op.f("pk_node_relation_sources")),
    )
    op.create_table(
        "run_metrics",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("runtime_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column(
            "at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["runtime_id"],
            ["runtimes.id"],
            name=op.f("fk_run_metrics_runtime_id_runtimes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_metrics")),
    )
    with op.batch_alter_table("run_metrics", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_metrics_runtime_id"), ["runtime_id"], unique=False)

    op.create_table(
        "run_transitions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("runtime_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "at",
            sa.DateTime()
            .with_variant(mysql.DATETIME(fsp=6), "mariadb")
            .with_variant(mysql.DATETIME(fsp=6), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["runtime_id"],
            ["runtimes.id"],
            name=op.f("fk_run_transitions_runtime_id_runtimes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_transitions")),
    )
    with op.batch_alter_table("run_transitions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_transitions_runtime_id"), ["runtime_id"], unique=False)

    op.create_table(
        "schedules",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("runtime_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("adapter", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.Column(
            "last_sync_at",
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
        sa.ForeignKeyConstraint(
            ["runtime_id"], ["runtimes.id"], name=op.f("fk_schedules_runtime_id_runtimes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_schedules_runtime_id"), ["runtime_id"], unique=False)

    op.create_table(
        "services",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("space_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("service_name", sa.String(length=63), nullable=False),
        sa.Column("model_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("model_version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("runtime_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("serving_object", sa.String(length=255), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=512), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("traffic_weight", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("adapter", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("log_path", sa.String(length=1024), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
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
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=op.f("fk_services_model_id_models")),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_services_model_version_id_model_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["runtime_id"], ["runtimes.id"], name=op.f("fk_services_runtime_id_runtimes")
        ),
        sa.ForeignKeyConstraint(["space_id"], ["spaces.id"], name=op.f("fk_services_space_id_spaces")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services")),
        sa.UniqueConstraint("runtime_id", name=op.f("uq_services_runtime_id")),
    )
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_services_model_id"), ["model_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_services_model_version_id"), ["model_version_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_services_space_id"), ["space_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_services_state"), ["state"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_services_state"))
        batch_op.drop_index(batch_op.f("ix_services_space_id"))
        batch_op.drop_index(batch_op.f("ix_services_model_version_id"))
        batch_op.drop_index(batch_op.f("ix_services_model_id"))

    op.drop_table("services")
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedules_runtime_id"))

    op.drop_table("schedules")
    with op.batch_alter_table("run_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_transitions_runtime_id"))

    op.drop_table("run_transitions")
    with op.batch_alter_table("run_metrics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_metrics_runtime_id"))

    op.drop_table("run_metrics")
    op.drop_table("node_relation_sources")
    with op.batch_alter_table("runtimes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runtimes_state"))
        batch_op.drop_index(batch_op.f("ix_runtimes_space_id"))
        batch_op.drop_index(batch_op.f("ix_runtimes_node_id"))
        batch_op.drop_index(batch_op.f("ix_runtimes_created_at"))

    op.drop_table("runtimes")
    with op.batch_alter_table("node_relations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_node_relations_operator_id"))

    op.drop_table("node_relations")
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nodes_space_id"))
        batch_op.drop_index(batch_op.f("ix_nodes_exam_id"))

    op.drop_table("nodes")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_versions_model_id"))

    op.drop_table("model_versions")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_space_id"))
        batch_op.drop_index(batch_op.f("ix_models_connect_id"))

    op.drop_table("models")
    with op.batch_alter_table("exams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exams_space_id"))
        batch_op.drop_index(batch_op.f("ix_exams_experiment_id"))

    op.drop_table("exams")
    with op.batch_alter_table("data_sources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_sources_space_id"))
        batch_op.drop_index(batch_op.f("ix_data_sources_connection_id"))

    op.drop_table("data_sources")
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tokens_user_id"))

    op.drop_table("tokens")
    with op.batch_alter_table("service_infos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_infos_space_id"))

    op.drop_table("service_infos")
    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operators_space_id"))

    op.drop_table("operators")
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_experiments_space_id"))

    op.drop_table("experiments")
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_connections_space_id"))

    op.drop_table("connections")
    op.drop_table("users")
    op.drop_table("spaces")
