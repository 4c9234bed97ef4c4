"""ORM models of the control store (SQLAlchemy 2.x): every entity of DESIGN.md §2.

Column attributes carry the wire schema's snake_case names (`connect_addr`,
`operator_epoch`, ...), so a pydantic body maps onto a row without a translation table.
Strings that are indexed are bounded VARCHARs and JSON/TEXT columns have no server
default, so the same schema works on SQLite and MySQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from control.store.access_models import AuditEvent, Reservation, SpaceMember, Token, User
from control.store.base import NAMING, Base, Id, Stamp, Timestamps, fk, utcnow
from control.store.front_models import ServiceFront
from control.store.pipeline_models import (
    ExamRun,
    ExamSchedule,
    NodeEdge,
    RunArtifact,
    RunAttempt,
    RunTrial,
    RunUpstream,
)

__all__ = [
    "NAMING",
    "AuditEvent",
    "Base",
    "ExamRun",
    "ExamSchedule",
    "Id",
    "NodeEdge",
    "Reservation",
    "RunArtifact",
    "RunAttempt",
    "RunTrial",
    "RunUpstream",
    "ServiceFront",
    "SpaceMember",
    "Stamp",
    "Timestamps",
    "Token",
    "User",
    "fk",
    "utcnow",
]


# -- namespaces ------------------------------------------------------------------------------


class Space(Base, Timestamps):
    __tablename__ = "spaces"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    space_name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    quota_cpu: Mapped[float | None] = mapped_column(Float, nullable=True)
    """CPUs the space's runs may hold at once (None: no limit)."""
    quota_gpu: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quota_memory: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """MiB."""


class Experiment(Base, Timestamps):
    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("space_id", "experiment_name"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    space_id: Mapped[int] = fk("spaces.id")
    experiment_name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")


class Exam(Base, Timestamps):
    __tablename__ = "exams"
    __table_args__ = (UniqueConstraint("space_id", "exam_name"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    space_id: Mapped[int] = fk("spaces.id")
    experiment_id: Mapped[int] = fk("experiments.id")
    exam_name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")


# -- static entities -------------------------------------------------------------------------


class Connection(Base, Timestamps):
    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("space_id", "connect_name"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    space_id: Mapped[int] = fk("spaces.id")
    connect_name: Mapped[str] = mapped_column(String(128))
    operation_type: Mapped[str] = mapped_column(String(64), default="")
    connect_type: Mapped[str] = mapped_column(String(16))
    connect_addr: Mapped[str] = mapped_column(String(1024), default="")
    connect_port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    connect_account: Mapped[str] = mapped_column(String(255), default="")
    connect_password_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    connect_space: Mapped[str] = mapped_column(String(255), default="")
    mode: Mapped[str] = mapped_column(String(64), default="")
    colony_type: Mapped[str] = mapped_column(String(16), default="SINGLE")
    source_conf: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source_route: Mapped[str] = mapped_column(String(1024), default="")
    source_size: Mapped[str] = mapped_column(String(64), default="")
    source_count: Mapped[int] = mapped_column(BigInteger, default=0)

    @property
    def has_password(self) -> bool:
        return bool(self.connect_password_enc)


class DataSource(Base, Timestamps):
    __tablename__ = "data_sources"
    __table_args__ = (UniqueConstraint("space_id", "source_name"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    space_id: Mapped[int] = fk("spaces.id")
    source_name: Mapped[str] = mapped_column(String(128))
    connection_id: Mapped[int] = fk("connections.id")
    source_type: Mapped[str] = mapped_column(String(16), default="source")
    source_space: Mapped[str] = mapped_column(String(255), default="")
    source_conf: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    task_init_execute: Mapped[str] = mapped_column(Text, default="")
    operate_execute_before: Mapped[str] = mapped_column(Text, default="")
    data_execute_before: Mapped[str] = mapped_column(Text, default="")
    operate_execute: Mapped[str] = mapped_column(Text, default="")
    data_execute_after: Mapped[str] = mapped_column(Text, default="")
    operate_execute_after: Mapped[str] = mapped_column(Text, default="")
    data_format: Mapped[str] = mapped_column(String(32), default="")
    operator_read_num: Mapped[int] = mapped_column(Integer, default=0)
    connect_read_num: Mapped[int] = mapped_column(Integer, default=0)
    paginate_read_num: Mapped[int] = mapped_column(Integer, default=0)
    disposable: Mapped[bool] = mapped_column(Boolean, default=False)
    async_load: Mapped[bool] = mapped_column(Boolean, default=True)
    order: Mapped[int] = mapped_column(Integer, default=0)


class Operator(Base, Timestamps):
    __tablename__ = "operators"
    __table_args__ = (UniqueConstraint("space_id", "operator_name"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    space_id: Mapped[int] = fk("spaces.id")
    operator_name: Mapped[str] = mapped_column(String(128))
    operator_template_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    operator_source_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    operator_source_type: Mapped[str] = mapped_column(String(16), default="CUSTOM")
    operator_runtime_type: Mapped[str] = mapped_column(String(16))
    operator_model: Mapped[str] = mapped_column(String(16), default="OFFLINE")
    level: Mapped[int] = mapped_column(Integer, default=1)
    resources_account_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    code_mode: Mapped[str] = mapped_column(String(32), default="MODULE")
    code_address: Mapped[str] = mapped_column(String(1024), default="")
    code_version: Mapped[str] = mapped_column(String(64), default="")
    module_name: Mapped[str] = mapped_column(String(255))
    execute_object: Mapped[str] = mapped_column(String(128))
    operator_conf: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    environment_conf: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    model_conf: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    operator_epoch: Mapped[int] = mapped_column(Integer, default=1)
    operator_plan_runtimes: Mapped[str] = mapped_column(String(64), default="")
    operator_priority: Mapped[int] = mapped_column(Integer, default=0)
    deploy_type: Mapped[str] = mapped_column(String(16), default="NOT_DEPLOY")
    search_conf: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """A hyper-parameter search (space in seed 001's JSON format, metric, mode, trials); {}: none."""


class Model(Base, Timestamps):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("space_id", "model_name"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    space_id: Mapped[int] = fk("spaces.id")
    model_name: Mapped[str] = mapped_column(String(128))
    node_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    runtime_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    operator_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    model_create_type: Mapped[str] = mapped_column(String(16), default="TRAIN")
    model_version: Mapped[str] = mapped_column(String(64), default="")
    model_score: Mapped[float] = mapped_column(Float, default=0)
    model_type: Mapped[str] = mapped_column(String(16), default="USER")
    model_technology_type: Mapped[str] = mapped_column(String(16), default="MULTI_MODE")
    model_address: Mapped[str] = mapped_column(String(1024), default="")
    model_status: Mapped[str] = mapped_column(String(32), default="")
    connect_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("connections.id"), nullable=True, index=True
    )
    connect_status: Mapped[str] = mapped_column(String(32), default="")
    operator_result: Mapped[str] = mapped_column(String(24), default="NOT_CONTAIN_OPTIMAL")
    resource_type: Mapped[str] = mapped_column(String(64), default="")
    resource_value: Mapped[str] = mapped_column(String(255), default="")
    resource_size: Mapped[str] = mapped_column(String(64), default="")
    produce_way: Mapped[str] = mapped_column(String(64), default="")


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "model_version"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = fk("models.id")
    model_version: Mapped[str] = mapped_column(String(64))
    model_score: Mapped[float] = mapped_column(Float, default=0)
    model_address: Mapped[str] = mapped_column(String(1024))
    runtime_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    operator_result: Mapped[str] = mapped_column(String(24), default="CONTAIN_OPTIMAL")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    serving_object: Mapped[str | None] = mapped_column(String(255), nullable=True)
    create_time: Mapped[datetime] = mapped_column(default=utcnow)


class ServiceInfo(Base, Timestamps):
    __tablename__ = "service_infos"
    __table_args__ = (UniqueConstraint("space_id", "si_name"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    space_id: Mapped[int] = fk("spaces.id")
    si_name: Mapped[str] = mapped_column(String(128))
    si_type: Mapped[str] = mapped_column(String(64), default="")
    si_runtime_pattern: Mapped[str] = mapped_column(String(16), default="COMMAND")
    si_node_num: Mapped[int] = mapped_column(Integer, default=1)
    si_image_name: Mapped[str] = mapped_column(String(512), default="")
    si_cpu: Mapped[int] = mapped_column(Integer, default=1)
    si_gpu: Mapped[int] = mapped_column(Integer, default=0)
    si_memory: Mapped[int] = mapped_column(Integer, default=1024)
    si_display_memory: Mapped[int] = mapped_column(Integer, default=0)
    si_label: Mapped[str] = mapped_column(String(255), default="")


class Node(Base, Timestamps):
    __tablename__ = "nodes"
    __table_args__ = (UniqueConstraint("space_id", "node_name"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    space_id: Mapped[int] = fk("spaces.id")
    exam_id: Mapped[int | None] = mapped_column(Id, ForeignKey("exams.id"), nullable=True, index=True)
    node_name: Mapped[str] = mapped_column(String(63))
    node_template_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    operator_source_type: Mapped[str] = mapped_column(String(16), default="CUSTOM")
    operator_runtime_type: Mapped[str] = mapped_column(String(16), default="TRAIN")
    node_model: Mapped[str] = mapped_column(String(16), default="OFFLINE")
    node_epoch: Mapped[int] = mapped_column(Integer, default=1)
    node_plan_runtimes: Mapped[str] = mapped_column(String(64), default="")
    node_status: Mapped[str] = mapped_column(String(16), default="CREATE")
    operator_priority: Mapped[int] = mapped_column(Integer, default=0)
    max_retries: Mapped[int] = mapped_column(Integer, default=0)
    trigger_rule: Mapped[str] = mapped_column(String(16), default="all_success")
    """When the node runs after its upstream nodes: all_success, all_done, one_failed."""
    cacheable: Mapped[bool] = mapped_column(Boolean, default=False)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Input name -> `upstreamNode.output`: resolved when the node's run is dispatched."""


class NodeRelation(Base, Timestamps):
    __tablename__ = "node_relations"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    node_id: Mapped[int] = mapped_column(Id, ForeignKey("nodes.id", ondelete="CASCADE"), unique=True)
    next_node_id: Mapped[int | None] = mapped_column(Id, ForeignKey("nodes.id"), nullable=True)
    operator_id: Mapped[int] = fk("operators.id")
    model_id: Mapped[int | None] = mapped_column(Id, ForeignKey("models.id"), nullable=True)
    service_info_id: Mapped[int | None] = mapped_column(Id, ForeignKey("service_infos.id"), nullable=True)
    max_service_info_id: Mapped[int | None] = mapped_column(Id, ForeignKey("service_infos.id"), nullable=True)
    min_service_info_id: Mapped[int | None] = mapped_column(Id, ForeignKey("service_infos.id"), nullable=True)


class NodeRelationSource(Base):
    __tablename__ = "node_relation_sources"
    relation_id: Mapped[int] = mapped_column(
        Id, ForeignKey("node_relations.id", ondelete="CASCADE"), primary_key=True
    )
    data_source_id: Mapped[int] = mapped_column(Id, ForeignKey("data_sources.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


# -- run time --------------------------------------------------------------------------------


class Runtime(Base):
    """One run of a node (or of a create_operators payload): state, times, attempt, log."""

    __tablename__ = "runtimes"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    space_id: Mapped[int | None] = mapped_column(Id, ForeignKey("spaces.id"), nullable=True, index=True)
    node_id: Mapped[int | None] = mapped_column(Id, ForeignKey("nodes.id"), nullable=True, index=True)
    node_name: Mapped[str] = mapped_column(String(63), index=True)
    operator_runtime_type: Mapped[str] = mapped_column(String(16))
    adapter: Mapped[str] = mapped_column(String(16), default="local")
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    """The current attempt, 1..max_attempts (`RunAttempt` keeps each one)."""
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    """1 + the node's maxRetries when the run was created."""
    retry_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    """When a queued run waiting for its next attempt is due (backoff); None otherwise."""
    failure_class: Mapped[str | None] = mapped_column(String(16), nullable=True)
    exam_run_id: Mapped[int | None] = mapped_column(Id, nullable=True, index=True)
    """The exam run this run belongs to (no foreign key, as `exam_id`)."""
    cache_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    """sha256 of what a cacheable node's outputs depend on (spec, code, upstream artifacts, data)."""
    progress: Mapped[float | None] = mapped_column(Float, nullable=True)
    stage: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rows_read: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    source_progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """sourceName -> {"rowsRead", "rowsTotal"}: the latest per-source counts from the agent's heartbeats."""
    exam_id: Mapped[int | None] = mapped_column(Id, nullable=True, index=True)
    """The exam launch this run belongs to (taskType EXAM); no foreign key, the record outlives the exam."""
    upstream_run_ids: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    """Runs of the same launch that must succeed before this one is dispatched (queued until then)."""
    token_hash: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The TaskSpec frozen at start, connection passwords encrypted."""
    envs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    run_parameter: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    log_path: Mapped[str] = mapped_column(String(1024), default="")
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)


class RunTransition(Base):
    __tablename__ = "run_transitions"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    runtime_id: Mapped[int] = fk("runtimes.id", ondelete="CASCADE")
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)


class RunMetric(Base):
    __tablename__ = "run_metrics"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    runtime_id: Mapped[int] = fk("runtimes.id", ondelete="CASCADE")
    step: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)


class Schedule(Base):
    """A dispatch record: which adapter runs the runtime, under which external id."""

    __tablename__ = "schedules"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    runtime_id: Mapped[int] = fk("runtimes.id", ondelete="CASCADE")
    adapter: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_sync_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)


class Service(Base):
    """An inference service: one model version behind an endpoint."""

    __tablename__ = "services"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    space_id: Mapped[int | None] = mapped_column(Id, ForeignKey("spaces.id"), nullable=True, index=True)
    service_name: Mapped[str] = mapped_column(String(63))
    model_id: Mapped[int] = fk("models.id")
    model_version_id: Mapped[int] = fk("model_versions.id")
    runtime_id: Mapped[int | None] = mapped_column(Id, ForeignKey("runtimes.id"), nullable=True, unique=True)
    serving_object: Mapped[str] = mapped_column(String(255))
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    endpoint: Mapped[str | None] = mapped_column(String(512), nullable=True)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    traffic_weight: Mapped[int] = mapped_column(Integer, default=100)
    state: Mapped[str] = mapped_column(String(24), default="starting", index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    adapter: Mapped[str] = mapped_column(String(16), default="local")
    external_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    log_path: Mapped[str] = mapped_column(String(1024), default="")
    token_hash: Mapped[str] = mapped_column(String(64))
    api_key_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """sha256 of the service's own inference key (shown once at deploy, rotatable)."""
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    """True: the inference endpoint answers without a token."""
    restarts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """How often control started the service again after its process ended."""
    mirror_percent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    weight_since: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    """When `traffic_weight` last changed (a grey release steps on from there)."""
    """This share (0-100) of its model's requests is copied to this version (a mirror candidate)."""
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow, onupdate=utcnow)
