"""Store queries for the static entities: keyword-only functions that take a session.

One table (`KINDS`) says, for each resource kind of the API, its ORM class, its wire
schemas and its name column, so create / replace / patch / list / delete are written once.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from control import schemas as s
from control.errors import Conflict, InvalidSpec, NotFound
from control.secrets import Vault
from control.store import models as m


@dataclass(frozen=True)
class Kind:
    path: str
    orm: type[m.Base]
    body: type[s.Wire]
    view: type[s.Wire]
    name_attr: str
    label: str


KINDS: dict[str, Kind] = {
    k.path: k
    for k in (
        Kind("connections", m.Connection, s.ConnectionIn, s.ConnectionOut, "connect_name", "connection"),
        Kind("sources", m.DataSource, s.DataSourceIn, s.DataSourceOut, "source_name", "data source"),
        Kind("operators", m.Operator, s.OperatorIn, s.OperatorOut, "operator_name", "operator"),
        Kind("models", m.Model, s.ModelIn, s.ModelOut, "model_name", "model"),
        Kind("service-infos", m.ServiceInfo, s.ServiceInfoIn, s.ServiceInfoOut, "si_name", "service info"),
        Kind("experiments", m.Experiment, s.ExperimentIn, s.ExperimentOut, "experiment_name", "experiment"),
        Kind("exams", m.Exam, s.ExamIn, s.ExamOut, "exam_name", "exam"),
        Kind("nodes", m.Node, s.NodeIn, s.NodeOut, "node_name", "node"),
    )
}


def kind(path: str) -> Kind:
    try:
        return KINDS[path]
    except KeyError:
        raise NotFound(f"unknown resource kind {path!r}: valid kinds are {', '.join(KINDS)}") from None


# -- spaces ----------------------------------------------------------------------------------


def get_space(*, session: Session, space: str | int) -> m.Space:
    col = m.Space.id if isinstance(space, int) or str(space).isdigit() else m.Space.space_name
    key: Any = int(space) if col is m.Space.id else space
    row = session.scalar(select(m.Space).where(col == key))
    if row is None:
        raise NotFound(f"space {space!r} does not exist: create it with PUT /api/v1/spaces/{space}")
    return row


def ensure_space(*, session: Session, name: str, description: str = "") -> tuple[m.Space, bool]:
    row = session.scalar(select(m.Space).where(m.Space.space_name == name))
    if row is not None:
        return row, False
    s.SpaceIn(space_name=name, description=description)  # validates the name
    row = m.Space(space_name=name, description=description)
    session.add(row)
    session.flush()
    return row, True


# -- generic lookups -------------------------------------------------------------------------


def find(*, session: Session, k: Kind, space_id: int, ref: str | int) -> Any:
    """Find one entity by id or by name within a space."""
    orm: Any = k.orm
    if isinstance(ref, int) or str(ref).isdigit():
        row = session.get(orm, int(ref))
        if row is not None and getattr(row, "space_id", space_id) == space_id:
            return row
    row = session.scalar(select(orm).where(orm.space_id == space_id, getattr(orm, k.name_attr) == str(ref)))
    if row is None:
        raise NotFound(f"{k.label} {ref!r} does not exist in this space")
    return row


def get_by_id(*, session: Session, orm: type[Any], ident: int, label: str) -> Any:
    row = session.get(orm, ident)
    if row is None:
        raise NotFound(f"{label} {ident} does not exist")
    return row


def list_rows(*, session: Session, k: Kind, space_id: int) -> Sequence[m.Base]:
    orm: Any = k.orm
    stmt: Select[Any] = select(orm).where(orm.space_id == space_id).order_by(orm.id)
    return session.scalars(stmt).all()


# -- views -----------------------------------------------------------------------------------


def view(*, session: Session, k: Kind, row: Any) -> dict[str, Any]:
    """The API view of one row (never a password)."""
    extra: dict[str, Any] = {}
    if k.path == "sources":
        conn = session.get(m.Connection, row.connection_id)
        extra["connection_name"] = conn.connect_name if conn else ""
    elif k.path == "models":
        versions = session.scalars(
            select(m.ModelVersion).where(m.ModelVersion.model_id == row.id).order_by(m.ModelVersion.id)
        ).all()
        extra["versions"] = [s.ModelVersionOut.model_validate(v, from_attributes=True) for v in versions]
        conn = session.get(m.Connection, row.connect_id) if row.connect_id else None
        extra["connection_name"] = conn.connect_name if conn else None
    elif k.path == "nodes":
        extra["last_run_state"] = session.scalar(
            select(m.Runtime.state).where(m.Runtime.node_id == row.id).order_by(m.Runtime.id.desc()).limit(1)
        )
        rel = relation_of(session=session, node_id=row.id)
        extra["relation"] = relation_view(session=session, rel=rel) if rel is not None else None
    fields = k.view.fields_of(row)
    fields.update(extra)
    return k.view.model_validate(fields).wire()


# -- writes ----------------------------------------------------------------------------------


def _columns(
    *, session: Session, k: Kind, space_id: int, body: BaseModel, vault: Vault, existing: Any = None
) -> dict[str, Any]:
    """Turn a validated body into ORM column values, resolving names to ids."""
    data = body.model_dump(exclude_unset=False)
    if k.path == "connections":
        password = data.pop("connect_password", None)
        if password is not None:
            data["connect_password_enc"] = vault.encrypt(password) if password else None
    elif k.path == "sources":
        conn_ref = data.pop("connection_id", None) or data.pop("connection_name", None)
        data.pop("connection_name", None)
        if conn_ref is None:
            raise InvalidSpec(
                f"data source {data['source_name']!r} has no connection: set connectionId or connectionName"
            )
        data["connection_id"] = find(
            session=session, k=KINDS["connections"], space_id=space_id, ref=conn_ref
        ).id
    elif k.path == "models":
        conn_ref = data.pop("connect_id", None) or data.pop("connection_name", None)
        data.pop("connection_name", None)
        data["connect_id"] = (
            find(session=session, k=KINDS["connections"], space_id=space_id, ref=conn_ref).id
            if conn_ref
            else None
        )
    elif k.path == "exams":
        find(session=session, k=KINDS["experiments"], space_id=space_id, ref=data["experiment_id"])
    elif k.path == "nodes":
        if data.get("exam_id") is not None:
            find(session=session, k=KINDS["exams"], space_id=space_id, ref=data["exam_id"])
        if data.get("node_status") == s.NodeStatus.EDIT_FINISH:
            check_node_complete(
                session=session, node_id=existing.id if existing is not None else None, name=data["node_name"]
            )
    return {key: (v.value if isinstance(v, enum.Enum) else v) for key, v in data.items()}


def _flush(session: Session, label: str, name: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"{label} {name!r} conflicts with an existing record ({exc.orig})") from exc


def validate_body(k: Kind, data: dict[str, Any]) -> BaseModel:
    try:
        return k.body.model_validate(data)
    except ValidationError as exc:
        raise InvalidSpec(describe_validation(k.label, exc)) from None


def describe_validation(label: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or label
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg}")
    return f"invalid {label}: " + "; ".join(parts)


def create(*, session: Session, k: Kind, space_id: int, body: BaseModel, vault: Vault) -> Any:
    name = getattr(body, k.name_attr)
    orm: Any = k.orm
    if session.scalar(select(orm.id).where(orm.space_id == space_id, getattr(orm, k.name_attr) == name)):
        raise Conflict(f"{k.label} {name!r} already exists: use PUT to replace it or PATCH to change it")
    cols = _columns(session=session, k=k, space_id=space_id, body=body, vault=vault)
    row = orm(space_id=space_id, **cols)
    session.add(row)
    _flush(session, k.label, name)
    return row


def replace(
    *, session: Session, k: Kind, space_id: int, name: str, body: BaseModel, vault: Vault
) -> tuple[Any, bool]:
    """Create or replace by name; returns (row, created). Omitted passwords are kept."""
    if getattr(body, k.name_attr) != name:
        raise InvalidSpec(
            f"the body names {k.label} {getattr(body, k.name_attr)!r} but the path names {name!r}"
        )
    orm: Any = k.orm
    row = session.scalar(select(orm).where(orm.space_id == space_id, getattr(orm, k.name_attr) == name))
    if row is None:
        return create(session=session, k=k, space_id=space_id, body=body, vault=vault), True
    cols = _columns(session=session, k=k, space_id=space_id, body=body, vault=vault, existing=row)
    for key, value in cols.items():
        setattr(row, key, value)
    _flush(session, k.label, name)
    return row, False


def patch(
    *, session: Session, k: Kind, space_id: int, ref: str | int, changes: dict[str, Any], vault: Vault
) -> Any:
    row: Any = find(session=session, k=k, space_id=space_id, ref=ref)
    current = k.body.fields_of(row)
    if k.path == "sources":
        current["connection_id"] = row.connection_id
    if k.path == "models":
        current["connect_id"] = row.connect_id
    current.pop("connect_password", None)
    by_alias = {f.alias or n: n for n, f in k.body.model_fields.items()}
    unknown = [key for key in changes if key not in by_alias and key not in k.body.model_fields]
    if unknown:
        raise InvalidSpec(f"invalid {k.label}: {', '.join(unknown)}: unknown field")
    merged = {**current, **{by_alias.get(key, key): v for key, v in changes.items()}}
    body = validate_body(k, merged)  # a password not in `changes` stays None: the stored one is kept
    cols = _columns(session=session, k=k, space_id=space_id, body=body, vault=vault, existing=row)
    for key, value in cols.items():
        setattr(row, key, value)
    _flush(session, k.label, str(ref))
    return row


def delete(*, session: Session, k: Kind, space_id: int, ref: str | int) -> None:
    row = find(session=session, k=k, space_id=space_id, ref=ref)
    session.delete(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"{k.label} {ref!r} is still used by other records: remove those first") from exc


# -- node relations and DAG checks -----------------------------------------------------------


def relation_of(*, session: Session, node_id: int) -> m.NodeRelation | None:
    return session.scalar(select(m.NodeRelation).where(m.NodeRelation.node_id == node_id))


def relation_source_ids(*, session: Session, relation_id: int) -> list[int]:
    rows = session.scalars(
        select(m.NodeRelationSource.data_source_id)
        .where(m.NodeRelationSource.relation_id == relation_id)
        .order_by(m.NodeRelationSource.position)
    )
    return list(rows)


def check_node_complete(*, session: Session, node_id: int | None, name: str) -> None:
    """A node may be EDIT_FINISH only once its relation names an operator."""
    rel = relation_of(session=session, node_id=node_id) if node_id is not None else None
    if rel is None:
        raise InvalidSpec(
            f"node {name!r} has no relation: bind its operator and data with createNodeRelation "
            "before marking it EDIT_FINISH"
        )


def _would_cycle(*, session: Session, node_id: int, next_node_id: int | None) -> bool:
    seen = {node_id}
    current = next_node_id
    while current is not None:
        if current in seen:
            return True
        seen.add(current)
        current = session.scalar(select(m.NodeRelation.next_node_id).where(m.NodeRelation.node_id == current))
    return False


def upsert_relation(*, session: Session, body: s.NodeRelationIn) -> m.NodeRelation:
    """createNodeRelation: validate every link, refuse cycles, replace an existing relation."""
    node = get_by_id(session=session, orm=m.Node, ident=body.node_id, label="node")
    space_id = node.space_id

    def same_space(orm: type[Any], ident: int | None, label: str) -> Any:
        if ident is None:
            return None
        row = get_by_id(session=session, orm=orm, ident=ident, label=label)
        if row.space_id != space_id:
            raise InvalidSpec(f"{label} {ident} belongs to another space than node {node.node_name!r}")
        return row

    operator = same_space(m.Operator, body.operator_id, "operator")
    if operator.operator_runtime_type != node.operator_runtime_type:
        raise InvalidSpec(
            f"operator {operator.operator_name!r} is {operator.operator_runtime_type} but node "
            f"{node.node_name!r} is {node.operator_runtime_type}"
        )
    sources = [same_space(m.DataSource, i, "data source") for i in body.all_source_ids()]
    if not any(
        src.source_type != s.SourceRole.SINK.value for src in sources
    ) and operator.operator_runtime_type in (
        "TRAIN",
        "FEATURES",
        "PYTHON_DATA",
    ):
        raise InvalidSpec(f"node {node.node_name!r} needs at least one input data source (sourceType source)")
    same_space(m.Model, body.model_id, "model")
    for si in (body.service_info_id, body.max_service_info_id, body.min_service_info_id):
        same_space(m.ServiceInfo, si, "service info")
    if body.next_node_id is not None:
        same_space(m.Node, body.next_node_id, "next node")
        if _would_cycle(session=session, node_id=node.id, next_node_id=body.next_node_id):
            raise InvalidSpec(
                f"nextNodeId {body.next_node_id} would make a cycle through node {node.node_name!r}"
            )
    rel = relation_of(session=session, node_id=node.id)
    if rel is None:
        rel = m.NodeRelation(node_id=node.id, operator_id=operator.id)
        session.add(rel)
    rel.operator_id = operator.id
    rel.next_node_id = body.next_node_id
    rel.model_id = body.model_id
    rel.service_info_id = body.service_info_id
    rel.max_service_info_id = body.max_service_info_id
    rel.min_service_info_id = body.min_service_info_id
    session.flush()
    for old in session.scalars(
        select(m.NodeRelationSource).where(m.NodeRelationSource.relation_id == rel.id)
    ):
        session.delete(old)
    session.flush()
    for pos, src in enumerate(sources):
        session.add(m.NodeRelationSource(relation_id=rel.id, data_source_id=src.id, position=pos))
    if node.node_status == s.NodeStatus.CREATE.value:
        node.node_status = s.NodeStatus.EDITING.value
    session.flush()
    return rel


def relation_view(*, session: Session, rel: m.NodeRelation) -> dict[str, Any]:
    return s.NodeRelationOut(
        id=rel.id,
        node_id=rel.node_id,
        next_node_id=rel.next_node_id,
        operator_id=rel.operator_id,
        data_source_ids=relation_source_ids(session=session, relation_id=rel.id),
        model_id=rel.model_id,
        service_info_id=rel.service_info_id,
        max_service_info_id=rel.max_service_info_id,
        min_service_info_id=rel.min_service_info_id,
    ).wire()


def count(*, session: Session, stmt: Select[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0)
