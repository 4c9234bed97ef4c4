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
from control.errors import Conflict, InvalidSpec, NotFound, describe_fields, field_errors
from control.secrets import Vault
from control.store import models as m
from control.store.relations import check_node_complete, relation_of, relation_view


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


def wire_name(k: Kind) -> str:
    """The wire (camelCase) name of `k`'s name field: `connectName`, `nodeName`, ..."""
    return k.body.model_fields[k.name_attr].alias or k.name_attr


def kind(path: str) -> Kind:
    try:
        return KINDS[path]
    except KeyError:
        raise NotFound(f"unknown resource kind {path!r}: valid kinds are {', '.join(KINDS)}") from None


# -- spaces ----------------------------------------------------------------------------------


#: the largest id a store holds (a signed 64-bit integer)
MAX_ID = 2**63 - 1


def as_id(ref: str | int) -> int | None:
    """`ref` as a store id when it is one (ASCII digits, 1 .. 2**63-1), else None (a name)."""
    if isinstance(ref, int):
        return ref if 1 <= ref <= MAX_ID else None
    text = str(ref)
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def missing_space(space: str | int) -> str:
    """What a missing space answers (and so also one the caller may not see)."""
    return f"space {space!r} does not exist: create it with PUT /api/v1/spaces/{space}"


def get_space(*, session: Session, space: str | int) -> m.Space:
    ident = as_id(space)
    if ident is not None:
        row = session.get(m.Space, ident)
    elif isinstance(space, int):
        row = None
    else:
        row = session.scalar(select(m.Space).where(m.Space.space_name == space))
    if row is None:
        raise NotFound(missing_space(space))
    return row


def ensure_space(*, session: Session, name: str, description: str = "") -> tuple[m.Space, bool]:
    row = session.scalar(select(m.Space).where(m.Space.space_name == name))
    if row is not None:
        return row, False
    try:
        s.SpaceIn(space_name=name, description=description)  # validates the name
    except ValidationError as exc:
        errors = field_errors(exc.errors(), whole="space")
        raise InvalidSpec(f"invalid space: {describe_fields(errors)}", errors=errors) from None
    row = m.Space(space_name=name, description=description)
    session.add(row)
    session.flush()
    return row, True


# -- generic lookups -------------------------------------------------------------------------


def find(*, session: Session, k: Kind, space_id: int, ref: str | int) -> Any:
    """Find one entity by id or by name within a space."""
    orm: Any = k.orm
    ident = as_id(ref)
    if ident is not None:
        row = session.get(orm, ident)
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


def referenced(*, session: Session, k: Kind, space_id: int, ref: str | int, field: str) -> Any:
    """`find`, for a reference in a request body: a missing entity is the body's fault (422 on `field`)."""
    try:
        return find(session=session, k=k, space_id=space_id, ref=ref)
    except NotFound as exc:
        raise InvalidSpec(str(exc), field=field, field_msg=f"no {k.label} {ref!r} in this space") from None


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
    if "search_conf" in data and data["search_conf"] is None:
        data["search_conf"] = {}  # stored as {}: no search
    if k.path == "connections":
        password = data.pop("connect_password", None)
        if password is not None:
            data["connect_password_enc"] = vault.encrypt(password) if password else None
    elif k.path == "sources":
        conn_ref = data.pop("connection_id", None) or data.pop("connection_name", None)
        data.pop("connection_name", None)
        if conn_ref is None:
            raise InvalidSpec(
                f"data source {data['source_name']!r} has no connection: set connectionId or connectionName",
                field="connectionName",
                field_msg="required (or connectionId)",
            )
        data["connection_id"] = referenced(
            session=session,
            k=KINDS["connections"],
            space_id=space_id,
            ref=conn_ref,
            field="connectionId" if isinstance(conn_ref, int) else "connectionName",
        ).id
    elif k.path == "models":
        conn_ref = data.pop("connect_id", None) or data.pop("connection_name", None)
        data.pop("connection_name", None)
        data["connect_id"] = (
            referenced(
                session=session,
                k=KINDS["connections"],
                space_id=space_id,
                ref=conn_ref,
                field="connectId" if isinstance(conn_ref, int) else "connectionName",
            ).id
            if conn_ref
            else None
        )
    elif k.path == "exams":
        referenced(
            session=session,
            k=KINDS["experiments"],
            space_id=space_id,
            ref=data["experiment_id"],
            field="experimentId",
        )
    elif k.path == "nodes":
        if data.get("exam_id") is not None:
            referenced(
                session=session, k=KINDS["exams"], space_id=space_id, ref=data["exam_id"], field="examId"
            )
        if data.get("node_status") == s.NodeStatus.EDIT_FINISH:
            check_node_complete(
                session=session, node_id=existing.id if existing is not None else None, name=data["node_name"]
            )
            if data.get("inputs") and existing is not None:
                from control.pipeline.artifacts import check_inputs  # deferred: artifacts imports the store

                check_inputs(
                    session=session,
                    node_id=existing.id,
                    space_id=space_id,
                    exam_id=data.get("exam_id"),
                    node_name=data["node_name"],
                    inputs=data["inputs"],
                )
    return {key: (v.value if isinstance(v, enum.Enum) else v) for key, v in data.items()}


def _flush(session: Session, label: str, name: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"{label} {name!r} conflicts with an existing record ({exc.orig})") from exc


def validate_body(k: Kind, data: dict[str, Any]) -> BaseModel:
    """Validate `data` as `k`'s body; a refusal names each wire field (camelCase) to blame."""
    try:
        return k.body.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc.errors(), whole=k.label)
        raise InvalidSpec(f"invalid {k.label}: {describe_fields(errors)}", errors=errors) from None


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
            f"the body names {k.label} {getattr(body, k.name_attr)!r} but the path names {name!r}",
            field=wire_name(k),
            field_msg=f"must be {name!r}, the name in the path",
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
        raise InvalidSpec(
            f"invalid {k.label}: {', '.join(unknown)}: unknown field",
            errors=[{"field": key, "msg": "unknown field"} for key in unknown],
        )
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


def count(*, session: Session, stmt: Select[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0)
