"""The runtime side's `POST /operator/create_operators` payload, as seed 000 §5.1 gives it.

Entities here also carry the seed's bookkeeping fields (id, createTime, deleteFlag,
updateTime), which the example payload sends; they are accepted and ignored.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from control.schemas._base import Wire
from control.schemas.entities import (
    ConnectionFields,
    DataSourceFields,
    ModelFields,
    OperatorFields,
    ServiceInfoFields,
)


class SeedMeta(Wire):
    id: int | None = None
    space_id: int | None = None
    create_time: int | datetime | None = None
    update_time: int | datetime | None = None
    delete_flag: int = 0


class ConnectionEntity(ConnectionFields, SeedMeta):
    connect_name: str = ""
    connect_password: str | None = Field(default=None, repr=False)


class DataSourceEntity(DataSourceFields, SeedMeta):
    source_name: str = ""
    connection_id: int | None = None
    connection_name: str = ""


class ModelEntity(ModelFields, SeedMeta):
    model_name: str = "model"


class OperatorEntity(OperatorFields, SeedMeta):
    operator_name: str = "operator"


class ResourceAccountEntity(ServiceInfoFields, SeedMeta):
    si_name: str = ""


class SourceAndConnect(Wire):
    connect_to: ConnectionEntity
    source_to: DataSourceEntity


class CreateOperatorsPayload(Wire):
    source_and_connects: list[SourceAndConnect]
    model_to: ModelEntity | None = None
    resource_account_to: ResourceAccountEntity | None = None
    operator_to: OperatorEntity
    model_connect: ConnectionEntity | None = None
