"""The runtime side's `POST /operator/create_operators` payload, as seed 000 §5.1 gives it.

Entities here also carry the seed's bookkeeping fields (id, createTime, deleteFlag,
updateTime), which the example payload sends; they are accepted and ignored.
`CreateOperatorsPayload.task_spec` turns a payload into the run's `TaskSpec`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import Field

from control.schemas._base import Int32, Int64, Str128, Str1024, Wire
from control.schemas.entities import (
    ConnectionFields,
    DataSourceFields,
    ModelFields,
    OperatorFields,
    ServiceInfoFields,
    check_dns1123,
)
from control.schemas.runs import ConnectionSpec, ModelSpec, OperatorSpec, SourceSpec, TaskSpec


class SeedMeta(Wire):
    id: Int64 | None = None
    space_id: Int64 | None = None
    create_time: Int64 | datetime | None = None
    update_time: Int64 | datetime | None = None
    delete_flag: Int32 = 0


class ConnectionEntity(ConnectionFields, SeedMeta):
    connect_name: Str128 = ""
    connect_password: Str1024 | None = Field(default=None, repr=False)


class DataSourceEntity(DataSourceFields, SeedMeta):
    source_name: Str128 = ""
    connection_id: Int64 | None = None
    connection_name: Str128 = ""


class ModelEntity(ModelFields, SeedMeta):
    model_name: Str128 = "model"


class OperatorEntity(OperatorFields, SeedMeta):
    operator_name: Str128 = "operator"


class ResourceAccountEntity(ServiceInfoFields, SeedMeta):
    si_name: Str128 = ""


class SourceAndConnect(Wire):
    connect_to: ConnectionEntity
    source_to: DataSourceEntity


class CreateOperatorsPayload(Wire):
    source_and_connects: list[SourceAndConnect] = Field(max_length=1000)
    model_to: ModelEntity | None = None
    resource_account_to: ResourceAccountEntity | None = None
    operator_to: OperatorEntity
    model_connect: ConnectionEntity | None = None

    def task_spec(self, encrypt: Callable[[str], str]) -> TaskSpec:
        """The run's TaskSpec (no node, no stored relation); `encrypt` seals each connection password."""

        def conn(entity: ConnectionEntity) -> ConnectionSpec:
            password = entity.connect_password or ""
            return ConnectionSpec(
                connect_name=entity.connect_name or f"connection-{entity.id or 0}",
                connect_type=entity.connect_type,
                connect_addr=entity.connect_addr,
                connect_port=entity.connect_port,
                connect_account=entity.connect_account,
                connect_password=encrypt(password) if password else "",
                connect_space=entity.connect_space,
                colony_type=entity.colony_type,
                source_conf=entity.source_conf,
            )

        op = self.operator_to
        sources = []
        for i, pair in enumerate(self.source_and_connects):
            src = pair.source_to
            fields = SourceSpec.fields_of(src)
            fields["source_name"] = src.source_name or f"{src.source_type.value}-{i}"
            sources.append(SourceSpec.model_validate({**fields, "connection": conn(pair.connect_to)}))
        model = None
        if self.model_to is not None:
            model = ModelSpec(
                model_name=self.model_to.model_name,
                model_address=self.model_to.model_address,
                connection=conn(self.model_connect) if self.model_connect else None,
            )
        safe = "".join(c if c.isascii() and c.isalnum() else "-" for c in op.operator_name.lower())
        name = safe.strip("-")[:63].strip("-") or "operator"
        return TaskSpec(
            run_id=0,
            node_name=check_dns1123(name) if name else "operator",
            space_id=op.space_id,
            operator=OperatorSpec.model_validate(OperatorSpec.fields_of(op)),
            sources=sorted(sources, key=lambda x: x.order),
            model=model,
        )
