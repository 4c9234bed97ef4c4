"""Static entities on the wire (seed 000 §3.2 field names): create bodies, patches and views.

`XxxIn` is a create/replace body, `XxxPatch` an update (every field optional) and
`XxxOut` what the API returns. Secrets go in, never out: views carry `hasPassword`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import AliasChoices, Field, ValidationInfo, field_validator

from control.schemas._base import (
    BUNDLE_ADDRESS,
    INT32_MAX,
    CodeMode,
    ColonyType,
    ConnectType,
    DeployType,
    Id,
    Int32,
    Int64,
    JsonObject,
    ModelCreateType,
    ModelTechnologyType,
    ModelType,
    NodeStatus,
    OperatorModel,
    OperatorResult,
    OperatorRuntimeType,
    OperatorSourceType,
    Real,
    Ref,
    RuntimePattern,
    SourceRole,
    Str32,
    Str64,
    Str128,
    Str255,
    Str512,
    Str1024,
    Text,
    Wire,
)
from control.schemas.pipeline import NodeInputs, SearchConf, TriggerRule

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
NAME = Field(min_length=1, max_length=128)


def check_dns1123(name: str) -> str:
    """Refuse a node name Kubernetes would refuse as a pod name (RFC 1123 label)."""
    if not DNS1123_LABEL.match(name):
        raise ValueError(
            f"{name!r} is not a valid Kubernetes name: use at most 63 lower-case letters, digits "
            "and '-', starting and ending with a letter or digit"
        )
    return name


class Stamped(Wire):
    id: int
    space_id: int
    create_time: datetime | None = None
    update_time: datetime | None = None


# -- space / experiment / exam ---------------------------------------------------------------


class SpaceIn(Wire):
    space_name: str = Field(min_length=1, max_length=63)
    description: Text = ""

    _name = field_validator("space_name")(check_dns1123)


class SpaceOut(Wire):
    id: int
    space_name: str
    description: str
    create_time: datetime | None = None


class ExperimentIn(Wire):
    experiment_name: str = NAME
    description: Text = ""


class ExperimentOut(ExperimentIn):
    id: int
    space_id: int


class ExamIn(Wire):
    exam_name: str = NAME
    experiment_id: Id
    description: Text = ""


class ExamOut(ExamIn):
    id: int
    space_id: int


# -- connection ------------------------------------------------------------------------------


class ConnectionFields(Wire):
    operation_type: Str64 = ""
    connect_type: ConnectType = ConnectType.FILE
    connect_addr: Str1024 = ""
    connect_port: int | None = Field(
        default=None, ge=1, le=65535, validation_alias=AliasChoices("connectPort", "connect_port")
    )
    connect_account: Str255 = ""
    connect_space: Str255 = ""
    mode: Str64 = ""
    colony_type: ColonyType = ColonyType.SINGLE
    source_conf: JsonObject = Field(default_factory=dict)
    source_route: Str1024 = ""
    source_size: Str64 = ""
    source_count: Int64 = 0


class ConnectionIn(ConnectionFields):
    connect_name: str = NAME
    connect_password: Str1024 | None = Field(default=None, repr=False)


class ConnectionPatch(Wire):
    connect_addr: Str1024 | None = None
    connect_port: int | None = Field(default=None, ge=1, le=65535)
    connect_account: Str255 | None = None
    connect_password: Str1024 | None = Field(default=None, repr=False)
    connect_space: Str255 | None = None
    colony_type: ColonyType | None = None
    source_conf: JsonObject | None = None


class ConnectionOut(ConnectionFields, Stamped):
    connect_name: str
    has_password: bool = False


# -- data source -----------------------------------------------------------------------------

HOOKS = (
    "task_init_execute",
    "operate_execute_before",
    "data_execute_before",
    "operate_execute",
    "data_execute_after",
    "operate_execute_after",
)


class DataSourceFields(Wire):
    source_type: SourceRole = SourceRole.SOURCE
    source_space: Str255 = ""
    source_conf: JsonObject = Field(default_factory=dict)
    task_init_execute: Text = ""
    operate_execute_before: Text = ""
    data_execute_before: Text = ""
    operate_execute: Text = ""
    data_execute_after: Text = ""
    operate_execute_after: Text = ""
    data_format: Str32 = ""
    operator_read_num: int = Field(default=0, ge=0, le=INT32_MAX)
    connect_read_num: int = Field(default=0, ge=0, le=INT32_MAX)
    paginate_read_num: int = Field(default=0, ge=0, le=INT32_MAX)
    disposable: bool = False
    async_load: bool = True
    order: Int32 = 0


class DataSourceIn(DataSourceFields):
    source_name: str = NAME
    connection_id: Id | None = None
    connection_name: Str128 | None = None
    """Either connectionId or connectionName names the connection."""


class DataSourceOut(DataSourceFields, Stamped):
    source_name: str
    connection_id: int
    connection_name: str


# -- operator --------------------------------------------------------------------------------


class OperatorFields(Wire):
    operator_template_id: Int64 | None = None
    operator_source_id: Int64 | None = None
    operator_source_type: OperatorSourceType = OperatorSourceType.CUSTOM
    operator_runtime_type: OperatorRuntimeType = OperatorRuntimeType.TRAIN
    operator_model: OperatorModel = OperatorModel.OFFLINE
    level: Int32 = 1
    resources_account_id: Int64 | None = None
    code_mode: CodeMode = CodeMode.MODULE
    code_address: str = Field(default="", max_length=1024, validate_default=True)
    code_version: str = Field(default="", max_length=64)
    module_name: str = Field(min_length=1, max_length=255)
    execute_object: str = Field(min_length=1, max_length=128)
    operator_conf: JsonObject = Field(default_factory=dict)
    environment_conf: JsonObject = Field(default_factory=dict)
    model_conf: JsonObject = Field(default_factory=dict)
    operator_epoch: int = Field(default=1, ge=1, le=INT32_MAX)
    operator_plan_runtimes: Str64 = ""
    operator_priority: Int32 = 0
    deploy_type: DeployType = DeployType.NOT_DEPLOY
    search_conf: SearchConf | None = None
    """A hyper-parameter search run with Ray Tune; null: a single training."""

    @field_validator("search_conf", mode="before")
    @classmethod
    def _no_search(cls, value: Any) -> Any:
        return None if value == {} else value

    @field_validator("code_address")
    @classmethod
    def _code_address(cls, value: str, info: ValidationInfo) -> str:
        mode = info.data.get("code_mode")
        return value if mode is None else check_code_address(CodeMode(mode), value)

    @field_validator("operator_conf", "environment_conf", "model_conf", mode="before")
    @classmethod
    def _json_text(cls, value: Any) -> Any:
        # the seed sends these as strings ("" or JSON text)
        if isinstance(value, str):
            import json

            if not value.strip():
                return {}
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not JSON: {exc.msg}") from None
        return value


class OperatorIn(OperatorFields):
    operator_name: str = NAME


class OperatorOut(OperatorFields, Stamped):
    operator_name: str
    code_mode: CodeMode | str = Field(default=CodeMode.MODULE, union_mode="left_to_right")  # type: ignore[assignment]
    """What is stored; rows written before codeMode was checked keep their value."""

    @field_validator("code_address")
    @classmethod
    def _code_address(cls, value: str, info: ValidationInfo) -> str:
        return value  # a view shows what is stored


def check_code_address(mode: CodeMode, address: str) -> str:
    """Refuse a codeAddress its codeMode cannot use (GIT and PIP need one; BUNDLE needs a digest)."""
    if mode is CodeMode.GIT and not address:
        raise ValueError("codeMode GIT needs codeAddress: the repository's URL or path")
    if mode is CodeMode.PIP and not address:
        raise ValueError("codeMode PIP needs codeAddress: a pip requirement, or a wheel's path or URL")
    if mode is CodeMode.BUNDLE and not BUNDLE_ADDRESS.match(address):
        raise ValueError(
            f"codeMode BUNDLE needs codeAddress atom-code://sha256:<64 hex digits>, not {address!r}: "
            "`atom apply` uploads a local directory or archive and writes it, or POST it to /api/v1/code"
        )
    return address


# -- model -----------------------------------------------------------------------------------


class ModelFields(Wire):
    node_id: Ref | None = None
    runtime_id: Ref | None = None
    operator_id: Ref | None = None
    model_create_type: ModelCreateType = ModelCreateType.TRAIN
    model_version: Str64 = ""
    model_score: Real = 0
    model_type: ModelType = ModelType.USER
    model_technology_type: ModelTechnologyType = ModelTechnologyType.MULTI_MODE
    model_address: Str1024 = ""
    model_status: Str32 = ""
    connect_id: Ref | None = None
    connection_name: Str128 | None = None
    connect_status: Str32 = ""
    operator_result: OperatorResult = OperatorResult.NOT_CONTAIN_OPTIMAL
    resource_type: Str64 = ""
    resource_value: Str255 = ""
    resource_size: Str64 = ""
    produce_way: Str64 = ""


class ModelIn(ModelFields):
    model_name: str = NAME


class ModelVersionOut(Wire):
    id: int
    model_version: str
    model_score: float
    model_address: str
    runtime_id: int | None
    operator_result: OperatorResult
    metrics: dict[str, Any] = Field(default_factory=dict)
    create_time: datetime | None = None


class ModelOut(ModelFields, Stamped):
    model_name: str
    versions: list[ModelVersionOut] = Field(default_factory=list)


# -- service info ----------------------------------------------------------------------------


class ServiceInfoFields(Wire):
    si_type: Str64 = ""
    si_runtime_pattern: RuntimePattern = RuntimePattern.COMMAND
    si_node_num: int = Field(default=1, ge=0, le=10_000)
    si_image_name: Str512 = ""
    si_cpu: int = Field(default=1, ge=0, le=INT32_MAX)
    si_gpu: int = Field(default=0, ge=0, le=INT32_MAX)
    si_memory: int = Field(default=1024, ge=0, le=INT32_MAX)
    si_display_memory: int = Field(default=0, ge=0, le=INT32_MAX)
    si_label: Str255 = ""


class ServiceInfoIn(ServiceInfoFields):
    si_name: str = NAME


class ServiceInfoOut(ServiceInfoFields, Stamped):
    si_name: str


# -- node and relation -----------------------------------------------------------------------


class NodeFields(Wire):
    node_template_id: Int64 | None = None
    exam_id: Id | None = None
    operator_source_type: OperatorSourceType = OperatorSourceType.CUSTOM
    operator_runtime_type: OperatorRuntimeType = OperatorRuntimeType.TRAIN
    node_model: OperatorModel = OperatorModel.OFFLINE
    node_epoch: int = Field(default=1, ge=1, le=INT32_MAX)
    node_plan_runtimes: Str64 = ""
    node_status: NodeStatus = NodeStatus.CREATE
    operator_priority: Int32 = 0
    max_retries: int = Field(default=0, ge=0, le=20)
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    cacheable: bool = False
    inputs: NodeInputs = Field(default_factory=dict)
    """Input name -> `upstreamNode.output` (e.g. `{"model": "train.model"}`), resolved at dispatch."""


class NodeIn(NodeFields):
    node_name: str = Field(min_length=1, max_length=63)

    _name = field_validator("node_name")(check_dns1123)


class NodePatch(Wire):
    node_status: NodeStatus | None = None
    exam_id: Id | None = None
    node_epoch: int | None = Field(default=None, ge=1, le=INT32_MAX)
    operator_priority: Int32 | None = None
    max_retries: int | None = Field(default=None, ge=0, le=20)
    trigger_rule: TriggerRule | None = None
    cacheable: bool | None = None
    inputs: NodeInputs | None = None


class NodeOut(NodeFields, Stamped):
    node_name: str
    last_run_state: str | None = None
    relation: NodeRelationOut | None = None


class NodeRelationIn(Wire):
    """Body of createNodeRelation: binds a node to its operator, data, model and resources."""

    node_id: Id
    next_node_id: Id | None = None
    next_node_ids: list[Id] = Field(default_factory=list, max_length=1000)
    """Every downstream node (fan-out); `nextNodeId` is the seed's single one, merged in."""
    operator_id: Id
    data_source_id: Id | None = None
    data_source_ids: list[Id] = Field(default_factory=list, max_length=1000)
    model_id: Id | None = Field(default=None, validation_alias=AliasChoices("modelID", "modelId", "model_id"))
    service_info_id: Id | None = None
    max_service_info_id: Id | None = None
    min_service_info_id: Id | None = None

    def all_next_ids(self) -> list[int]:
        ids = list(dict.fromkeys(self.next_node_ids))
        if self.next_node_id is not None and self.next_node_id not in ids:
            ids.insert(0, self.next_node_id)
        return ids

    def all_source_ids(self) -> list[int]:
        ids = list(self.data_source_ids)
        if self.data_source_id is not None and self.data_source_id not in ids:
            ids.insert(0, self.data_source_id)
        return ids


class NodeRelationOut(Wire):
    id: int
    node_id: int
    next_node_id: int | None
    next_node_ids: list[int] = Field(default_factory=list)
    operator_id: int
    data_source_ids: list[int]
    model_id: int | None
    service_info_id: int | None
    max_service_info_id: int | None
    min_service_info_id: int | None


NodeOut.model_rebuild()
