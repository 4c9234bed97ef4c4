"""Shared pydantic base for Atom's wire contract: camelCase on the wire, unknown fields refused."""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Wire(BaseModel):
    """Every request and response body: camelCase aliases, snake_case attributes, no extras."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
        str_strip_whitespace=True,
    )

    def wire(self, **kwargs: Any) -> dict[str, Any]:
        """The JSON-ready dict with camelCase keys."""
        return self.model_dump(mode="json", by_alias=True, **kwargs)

    @classmethod
    def fields_of(cls, obj: object) -> dict[str, Any]:
        """The attributes of `obj` (an ORM row, another model) that this model has fields for."""
        return {name: getattr(obj, name) for name in cls.model_fields if hasattr(obj, name)}


class StrEnum(enum.StrEnum):
    """An enum of wire strings that also accepts any casing (`train` -> TRAIN)."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        # accept any casing from YAML / JSON ("train" -> TRAIN)
        if isinstance(value, str):
            for member in cls:
                if member.value.lower() == value.lower():
                    return member
        return None


class ConnectType(StrEnum):
    FILE = "FILE"
    MYSQL = "MYSQL"
    REDIS = "REDIS"
    S3 = "S3"
    ALIYUNOSS = "ALIYUNOSS"


class ColonyType(StrEnum):
    SINGLE = "SINGLE"
    GROUP = "GROUP"


class SourceRole(StrEnum):
    """sourceType: what a data source is to the node (legacy runtime roles)."""

    SOURCE = "source"
    TEST_SOURCE = "test_source"
    INIT_DATA = "init_data"
    SINK = "sink"

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, str):
            aliases = {
                "input": cls.SOURCE,
                "train": cls.SOURCE,
                "output": cls.SINK,
                "validation": cls.TEST_SOURCE,
                "test": cls.TEST_SOURCE,
            }
            low = value.lower()
            if low in aliases:
                return aliases[low]
            for member in cls:
                if member.value == low:
                    return member
        return None


class OperatorRuntimeType(StrEnum):
    TRAIN = "TRAIN"
    REASONING = "REASONING"
    FEATURES = "FEATURES"
    PYTHON = "PYTHON"
    FLINK = "FLINK"
    PY_FLINK = "PY_FLINK"
    ALINK = "ALINK"
    PYTHON_DATA = "PYTHON_DATA"


class OperatorModel(StrEnum):
    OFFLINE = "OFFLINE"
    REALTIME = "REALTIME"
    NEAR_REALTIME = "NEAR_REALTIME"


class OperatorSourceType(StrEnum):
    CUSTOM = "CUSTOM"
    SYSTEM = "SYSTEM"
    OTHER = "OTHER"


class DeployType(StrEnum):
    NOT_DEPLOY = "NOT_DEPLOY"
    TOUCH_DEPLOY = "TOUCH_DEPLOY"
    GREY_DEPLOY = "GREY_DEPLOY"
    AUTO_DEPLOY = "AUTO_DEPLOY"


class ModelCreateType(StrEnum):
    DATA = "DATA"
    TRAIN = "TRAIN"
    REASON = "REASON"
    FEATURE = "FEATURE"
    UPLOAD = "UPLOAD"


class ModelType(StrEnum):
    PRE_TRAINING = "PRE_TRAINING"
    TERMINAL = "TERMINAL"
    USER = "USER"
    COMMON = "COMMON"


class ModelTechnologyType(StrEnum):
    MULTI_MODE = "MULTI_MODE"
    NLP = "NLP"


class OperatorResult(StrEnum):
    CONTAIN_OPTIMAL = "CONTAIN_OPTIMAL"
    NOT_CONTAIN_OPTIMAL = "NOT_CONTAIN_OPTIMAL"


class RuntimePattern(StrEnum):
    COMMAND = "COMMAND"
    KUBERNETES = "KUBERNETES"


class NodeStatus(StrEnum):
    CREATE = "CREATE"
    EDITING = "EDITING"
    EDIT_FINISH = "EDIT_FINISH"


class RunState(StrEnum):
    """A runtime's state (seed 002 state machine)."""

    QUEUED = "queued"
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"

    def is_terminal(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.STOPPED)


class ServiceState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    WAITING_APPROVAL = "waiting_approval"
    STOPPED = "stopped"
    FAILED = "failed"
