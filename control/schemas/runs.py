"""Run-time contract: task events (seed paths), run and service views, and the agent's calls.

The runtime agent fetches a `TaskSpec`, reports through `StateReport`, `Heartbeat`,
`MetricReport` and `ModelVersionReport`, and ends with `TaskEvent` on runningAutoFinish.
Users read a run as `RunOut` (pages of them as `RunPage`) and its frozen spec as `RunSpecView`,
which never carries a password.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from control.schemas._base import (
    INT64_MAX,
    REASON_CHARS,
    ColonyType,
    ConnectType,
    DeployType,
    Id,
    Int32,
    Int64,
    OperatorResult,
    OperatorRuntimeType,
    Real,
    Reason,
    RunState,
    ServiceState,
    SourceRole,
    Str16,
    Str128,
    Str255,
    Str1024,
    StrEnum,
    StrMap,
    Wire,
)
from control.schemas.entities import ServiceInfoFields
from control.schemas.pipeline import FailureClass

if TYPE_CHECKING:
    from connectors.base import ConnectionConfig


class TaskEvent(Wire):
    """Body of startNodeTask and runningAutoFinish (seed 000 §4 and §5.2)."""

    task_id: Id
    """The node id (or the exam id when `taskType` is EXAM)."""
    task_type: Str16 = "NODE"
    """NODE starts one node; EXAM starts every node of the exam (all EDIT_FINISH) in nextNodeId order,
    each with these envs and runParameter (operatorRuntimeType is then not checked)."""
    envs: StrMap = Field(default_factory=dict)
    operator_runtime_type: OperatorRuntimeType | None = None
    run_parameter: StrMap = Field(default_factory=dict)


class StartResult(Wire):
    run_ids: list[int]
    """Every run created; for an exam, in topological order (roots first)."""
    msg: str = "started"


class FinishResult(Wire):
    run_id: int
    state: RunState
    service_id: int | None = None
    msg: str


# -- what the agent receives ------------------------------------------------------------------


class ConnectionSpecFields(Wire):
    connect_name: str
    connect_type: ConnectType
    connect_addr: str = ""
    connect_port: int | None = None
    connect_account: str = ""
    connect_space: str = ""
    colony_type: ColonyType = ColonyType.SINGLE
    source_conf: dict[str, Any] = Field(default_factory=dict)


class ConnectionSpec(ConnectionSpecFields):
    connect_password: str = Field(default="", repr=False)

    def connector_config(self, *, addr: str | None = None) -> ConnectionConfig:
        """The connector library's config of this connection (its password as it is here);
        `addr` replaces `connectAddr`."""
        from connectors.base import ConnectionConfig  # deferred: wire models load without connectors

        return ConnectionConfig(
            connect_type=str(self.connect_type),
            addr=self.connect_addr if addr is None else addr,
            port=self.connect_port,
            account=self.connect_account,
            password=self.connect_password,
            space=self.connect_space,
            colony_type=str(self.colony_type),
            source_conf=dict(self.source_conf),
        )


class SourceSpecFields(Wire):
    source_name: str
    source_type: SourceRole
    operate_execute: str = ""
    data_format: str = ""
    operator_read_num: int = 0
    connect_read_num: int = 0
    paginate_read_num: int = 0
    disposable: bool = False
    async_load: bool = True
    order: int = 0
    source_conf: dict[str, Any] = Field(default_factory=dict)
    task_init_execute: str = ""
    operate_execute_before: str = ""
    data_execute_before: str = ""
    data_execute_after: str = ""
    operate_execute_after: str = ""


class SourceSpec(SourceSpecFields):
    connection: ConnectionSpec


class OperatorSpec(Wire):
    operator_name: str
    operator_runtime_type: OperatorRuntimeType
    module_name: str
    execute_object: str
    code_mode: str = "MODULE"
    code_address: str = ""
    code_version: str = ""
    operator_conf: dict[str, Any] = Field(default_factory=dict)
    environment_conf: dict[str, Any] = Field(default_factory=dict)
    model_conf: dict[str, Any] = Field(default_factory=dict)
    operator_epoch: int = 1
    deploy_type: DeployType = DeployType.NOT_DEPLOY
    search_conf: dict[str, Any] = Field(default_factory=dict)
    """The operator's hyper-parameter search (`SearchConf` fields); {}: none."""

    @field_validator("search_conf", mode="before")
    @classmethod
    def _search_conf(cls, value: Any) -> Any:
        if value is None:
            return {}
        return value.model_dump() if isinstance(value, BaseModel) else value


class ModelSpec(Wire):
    model_id: int | None = None
    model_name: str
    model_version: str = ""
    """The version this run registers (reserved at dispatch; its agent's ATOM_MODEL_VERSION)."""
    model_address: str = ""
    connection: ConnectionSpec | None = None


class ServiceInfoSpec(ServiceInfoFields):
    si_name: str = ""


class RunSpecFields(Wire):
    """What a run's task spec holds besides its sources and model (shared by the two views of it)."""

    run_id: int
    node_id: int | None = None
    node_name: str
    space_id: int | None = None
    attempt: int = 1
    operator: OperatorSpec
    service_info: ServiceInfoSpec | None = None
    envs: dict[str, str] = Field(default_factory=dict)
    run_parameter: dict[str, str] = Field(default_factory=dict)
    exam_run_id: int | None = None
    logical_date: str | None = None
    """ISO 8601 (UTC) moment a scheduled or backfilled exam run stands for (ATOM_LOGICAL_DATE)."""
    inputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Input name -> the upstream artifact it resolved to at dispatch (`ArtifactOut` fields)."""


class TaskSpec(RunSpecFields):
    """Everything one run needs: fetched by the agent with its run token."""

    sources: list[SourceSpec] = Field(default_factory=list)
    model: ModelSpec | None = None


def _stop_reason(value: dict[str, Any]) -> dict[str, Any]:
    reason = value.get("reason")
    if reason is not None and not (isinstance(reason, str) and len(reason) <= REASON_CHARS):
        raise ValueError(f"reason must be a line of text of at most {REASON_CHARS} characters")
    return value


StopBody = Annotated[dict[str, Any], AfterValidator(_stop_reason)]
"""Body of `POST /api/v1/runs/{id}/stop`: `{"reason": "..."}` (optional)."""


# -- what the agent reports -------------------------------------------------------------------


class StateReport(Wire):
    state: RunState
    reason: Reason = ""
    failure_class: FailureClass | None = None
    """With state failed: why (the agent's classification); control decides whether to retry."""
    retryable: bool | None = None
    """With state failed: the operator opted in to retries of its own errors (`retryOnUserError`)."""


class SourceProgress(Wire):
    """How far the agent has read one source."""

    rows_read: int = Field(ge=0, le=INT64_MAX)
    """Rows read so far (in the current pass over the source)."""
    rows_total: int | None = Field(default=None, ge=0, le=INT64_MAX)
    """The source's row count where it is known cheaply (parquet metadata, a finished read); else null."""


class Heartbeat(Wire):
    progress: float | None = Field(default=None, ge=0, le=1)
    stage: Str255 | None = None
    rows_read: Int64 | None = None
    sources: dict[Str128, SourceProgress] | None = Field(default=None, max_length=1000)
    """Per-source progress keyed by sourceName; null leaves what control has as it is."""


class MetricReport(Wire):
    step: Int32 = 0
    values: dict[Str128, Real] = Field(max_length=1000)


class ModelVersionReport(Wire):
    model_address: Str1024
    model_score: Real = 0
    metrics: dict[Str128, Real] = Field(default_factory=dict, max_length=1000)
    operator_result: OperatorResult = OperatorResult.CONTAIN_OPTIMAL
    serving_object: Str255 | None = None
    """`module:Class` of the reasoning operator that serves this model (the operator's `serving_object`)."""


class ModelVersionAssigned(Wire):
    model_version: str
    model_version_id: int


# -- run and service views --------------------------------------------------------------------


class Transition(Wire):
    from_state: RunState | None
    to_state: RunState
    reason: str
    at: datetime


class MetricPoint(Wire):
    step: int
    name: str
    value: float
    at: datetime


class RunOut(Wire):
    id: int
    node_id: int | None
    node_name: str
    space_id: int | None
    operator_runtime_type: OperatorRuntimeType
    adapter: str
    state: RunState
    reason: str = ""
    attempt: int
    max_attempts: int = 1
    retry_at: datetime | None = None
    """When the next attempt starts (a queued run backing off after a retryable failure)."""
    failure_class: str | None = None
    exam_run_id: int | None = None
    cache_key: str | None = None
    progress: float | None = None
    stage: str | None = None
    rows_read: int | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    external_id: str | None = None
    exam_id: int | None = None
    """The exam this run was started with (taskType EXAM), else null."""
    upstream_run_ids: list[int] = Field(default_factory=list)
    """Runs of the same exam launch that must succeed before this one is dispatched."""
    dispatch: dict[str, Any] = Field(default_factory=dict)
    """Where the run went (one run's view only): `resources` asked (per node), training `workers`,
    what the adapter `granted` (GPU ids and cores, or a Ray job's entrypoint resources), or why
    it is `waiting`."""
    history: list[Transition] = Field(default_factory=list)


class RunPage(Wire):
    items: list[RunOut]
    total: int
    """How many runs match the filters (not only this page)."""


class RunSort(StrEnum):
    """Sort keys of `GET /api/v1/runs` (`sort=`); ties are broken by id, newest first."""

    ID = "id"
    NODE = "node"
    OPERATOR = "operator"
    ADAPTER = "adapter"
    STATE = "state"
    ATTEMPT = "attempt"
    CREATED = "created"
    STARTED = "started"
    FINISHED = "finished"
    DURATION = "duration"
    """(finishedAt, or now while running) - startedAt; runs not started sort last."""
    PROGRESS = "progress"


# -- the run's frozen spec, as users see it -----------------------------------------------------


class ConnectionView(ConnectionSpecFields):
    """A connection of a run's spec without its password (`hasPassword` says whether it has one)."""

    has_password: bool = False


class SourceView(SourceSpecFields):
    connection: ConnectionView
    rows_read: int | None = None
    """Rows the agent has read from this source (its latest heartbeat); null before any."""
    rows_total: int | None = None
    """The source's row count where the agent knows it cheaply; else null."""


class ModelView(Wire):
    model_id: int | None = None
    model_name: str
    model_address: str = ""
    connection: ConnectionView | None = None


class RunSpecView(RunSpecFields):
    """`GET /api/v1/runs/{runId}/spec`: the TaskSpec frozen at start, no password in it."""

    sources: list[SourceView] = Field(default_factory=list)
    model: ModelView | None = None


class LogChunk(Wire):
    model_config = ConfigDict(**{**Wire.model_config, "str_strip_whitespace": False})

    offset: int
    next_offset: int
    text: str
    eof: bool
    """True when the run is over and nothing more will be written."""


class ServiceOut(Wire):
    id: int
    service_name: str
    space_id: int | None
    model_name: str
    model_version: str
    runtime_id: int | None
    replicas: int
    endpoint: str | None
    traffic_weight: int
    state: ServiceState
    reason: str = ""
    adapter: str
    created_at: datetime
    public: bool = False
    """True: the service answers inference calls without a token."""
    has_key: bool = False
    """The service has an inference key (rotate it with POST /api/v1/services/{id}/key to see one)."""
    restarts: int = 0
    """How often control started the service again after its process ended (ATOM_SERVICE_RESTARTS)."""
    mirror_percent: int = 0
    """This share of the model's requests is copied to this version; only the primary's answer is returned."""
    front_endpoint: str | None = None
    """The model's stable endpoint (its routing front): requests there are split between its versions."""
    api_key: str | None = None
    """Only in the answer of the call that made the key (approving a TOUCH_DEPLOY service)."""


class ServeSpec(Wire):
    """What `atom-runtime serve` fetches for a service started by control."""

    service_id: int
    service_name: str
    model_name: str
    model_version: str
    model_address: str
    connection: ConnectionSpec | None = None
    serving_object: str
    """`module:Class` of the reasoning operator that answers requests."""
    model_conf: dict[str, Any] = Field(default_factory=dict)
    code_mode: str = "MODULE"
    """The codeMode of the operator that trained the model: `serve` fetches the same code."""
    code_address: str = ""
    code_version: str = ""
    module_name: str = ""
    """The top-level package that code holds (the training operator's), which finds its import root."""


class AdapterOut(Wire):
    """A dispatch adapter: the runtime patterns it runs here and what its target has."""

    name: str
    patterns: list[str] = Field(default_factory=list)
    """siRuntimePattern values this control sends to it (ATOM_DISPATCH_ADAPTERS)."""
    resources: dict[str, Any] = Field(default_factory=dict)
    """`total` and `free` CPU / GPU (and memory in MiB where known), plus target details."""
    note: str = ""
    """Why resources are not shown (the target is not started yet, or does not answer)."""
