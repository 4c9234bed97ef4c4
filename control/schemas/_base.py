"""Shared pydantic base for Atom's wire contract: camelCase on the wire, unknown fields refused."""

from __future__ import annotations

import enum
import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

# -- sizes at the edge: every value fits the store column it goes to -------------------------

MAX_ID = 2**63 - 1
"""The largest id a store holds (a signed 64-bit integer)."""
TEXT_BYTES = 65535
"""Free text (descriptions, the data hooks' SQL/code): what a TEXT column holds, in UTF-8 bytes."""
MAX_REAL = 3.4e38
"""The largest magnitude a FLOAT column holds."""

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
"""An id of a stored object."""
Ref = Annotated[int, Field(ge=0, le=MAX_ID)]
"""An id of another object as the original runtime's payloads send it: 0 means none."""
Int32 = Annotated[int, Field(ge=-(2**31), le=INT32_MAX)]
"""An INTEGER column (a Field(ge=...) on the same field replaces these bounds: give `le` there too)."""
Int64 = Annotated[int, Field(ge=-(2**63), le=INT64_MAX)]
Real = Annotated[float, Field(ge=-MAX_REAL, le=MAX_REAL)]
Str16 = Annotated[str, StringConstraints(max_length=16)]
Str32 = Annotated[str, StringConstraints(max_length=32)]
Str64 = Annotated[str, StringConstraints(max_length=64)]
Str128 = Annotated[str, StringConstraints(max_length=128)]
Str255 = Annotated[str, StringConstraints(max_length=255)]
"""Names, accounts, labels."""
Str512 = Annotated[str, StringConstraints(max_length=512)]
Str1024 = Annotated[str, StringConstraints(max_length=1024)]
"""Addresses: URLs, paths, hosts."""


def _fits_text(value: str) -> str:
    size = len(value.encode("utf-8", "surrogatepass"))  # pydantic refuses lone surrogates in str
    if size > TEXT_BYTES:
        raise ValueError(f"is {size} bytes long: at most {TEXT_BYTES} bytes of UTF-8 are kept")
    return value


Text = Annotated[str, StringConstraints(max_length=TEXT_BYTES), AfterValidator(_fits_text)]
"""Free text and SQL/code of the data hooks: at most 64 KiB."""
REASON_CHARS = 4096
Reason = Annotated[str, StringConstraints(max_length=REASON_CHARS)]
"""Why a run changed state: one line, kept with a prefix in a TEXT column."""


class JsonLimit:
    """The largest JSON object field (operatorConf, sourceConf, ...) stored, serialized.

    Control sets it from `ATOM_MAX_JSON_FIELD_BYTES` when its app is made (`set`); clients of the
    wire contract keep the default.
    """

    max_bytes: int = 1024**2

    @classmethod
    def set(cls, max_bytes: int) -> None:
        cls.max_bytes = max_bytes


def _fits_json(value: Any) -> Any:
    try:
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("holds a lone UTF-16 surrogate, which cannot be stored") from None
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"cannot be stored as JSON: {exc}") from None
    if size > JsonLimit.max_bytes:
        raise ValueError(
            f"is {size} bytes as JSON: at most {JsonLimit.max_bytes} are kept (ATOM_MAX_JSON_FIELD_BYTES)"
        )
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_fits_json)]
"""A JSON object field, at most `JsonLimit.max_bytes` serialized."""
StrMap = Annotated[dict[Str255, Text], AfterValidator(_fits_json)]
"""Names to strings (envs, runParameter), at most `JsonLimit.max_bytes` serialized."""


class Wire(BaseModel):
    """Every request and response body: camelCase aliases, snake_case attributes, no extras."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
        str_strip_whitespace=True,
        allow_inf_nan=False,
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


class CodeMode(StrEnum):
    """codeMode: how the operator's code reaches the agent.

    `CODE` (the original runtime's name for an importable module) and an empty value read as MODULE.
    """

    MODULE = "MODULE"
    """Already importable where the agent runs (installed in its environment)."""
    GIT = "GIT"
    """A git repository (codeAddress: URL or path) at a branch, tag or commit (codeVersion)."""
    PIP = "PIP"
    """A pip requirement or a wheel's path or URL, installed into a cached per-version directory."""
    BUNDLE = "BUNDLE"
    """A tar.gz or zip uploaded to control (codeAddress: `atom-code://sha256:<hex>`)."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, str) and value.strip().upper() in ("", "CODE"):
            return cls.MODULE
        return super()._missing_(value)


BUNDLE_ADDRESS = re.compile(r"^atom-code://(sha256:[0-9a-f]{64})$")
"""A BUNDLE codeAddress; group 1 is the digest control stores the bundle under."""


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
    """Where a run goes (siRuntimePattern): the planner maps each to an adapter (ATOM_DISPATCH_ADAPTERS)."""

    COMMAND = "COMMAND"
    """A local process of the control host (the `local` adapter)."""
    RAY = "RAY"
    """A Ray job on the shared Ray cluster (the `ray` adapter)."""
    DOCKER = "DOCKER"
    """A container on a Docker engine (the `docker` adapter)."""
    KUBERNETES = "KUBERNETES"
    """A Kubernetes Job / Deployment (the `kubernetes` adapter; needs a kubeconfig or a pod's account)."""


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
    SKIPPED = "skipped"
    """Never ran: its trigger rule was not met, or a cacheable node's outputs were reused."""

    def is_terminal(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.STOPPED, RunState.SKIPPED)


class ServiceState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    WAITING_APPROVAL = "waiting_approval"
    STOPPED = "stopped"
    FAILED = "failed"
