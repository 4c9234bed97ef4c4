"""Plain resource routes: `/api/v1/spaces/{space}/{kind}[/{name}]` for every static entity.

One set of handlers is registered per kind with that kind's own body schema, so the
OpenAPI document names every field and unknown fields are refused.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from fastapi import APIRouter, Body, Depends, Response

from control import audit, users
from control import schemas as s
from control.access import Need, Principal, space_for
from control.api.deps import Caller, Orch, require_user
from control.api.params import NewSpaceName, ObjectRef, SpaceName
from control.errors import Conflict, Forbidden
from control.store import models as m
from control.store import repo
from control.store.repo import Kind

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_user)], tags=["resources"])


@router.get("/spaces", response_model=list[s.SpaceOut])
def list_spaces(orch: Orch, who: Caller) -> list[dict[str, Any]]:
    """The spaces the caller can read."""
    from sqlalchemy import select

    with orch.store.transaction() as ses:
        stmt = select(m.Space).order_by(m.Space.id)
        visible = who.space_ids(ses)
        if visible is not None:
            stmt = stmt.where(m.Space.id.in_(sorted(visible)))
        rows = ses.scalars(stmt).all()
        return [s.SpaceOut.model_validate(r, from_attributes=True).wire() for r in rows]


@router.put("/spaces/{space}", response_model=s.SpaceOut)
def put_space(
    space: NewSpaceName, orch: Orch, who: Caller, response: Response, body: s.SpaceIn | None = None
) -> dict[str, Any]:
    """Create a space (its creator becomes its owner) or change one the caller owns."""
    from sqlalchemy import select

    description = body.description if body else ""
    with orch.store.transaction() as ses:
        row = ses.scalar(select(m.Space).where(m.Space.space_name == space))
        if row is None:
            row = _create_space(ses, who, space, description)
            response.status_code = 201
        else:
            if who.level_in(ses, row) == 0:
                raise Conflict(f"space name {space!r} is taken: pick another name")
            if body is not None and body.description != row.description:
                who.require(ses, row, Need.OWN)
                audit.record(ses, who, "change", "space", space, space_id=row.id, fields=["description"])
                row.description = body.description
            response.status_code = 200
        return s.SpaceOut.model_validate(row, from_attributes=True).wire()


def _create_space(ses: Any, who: Principal, space: str, description: str) -> m.Space:
    if who.spaces is not None:
        raise Forbidden(
            f"{who.name}: a token limited to spaces {', '.join(sorted(who.spaces))} "
            f"may not create space {space!r}"
        )
    row, _ = repo.ensure_space(session=ses, name=space, description=description)
    users.on_space_created(ses, who, row)
    audit.record(ses, who, "create", "space", space, space_id=row.id)
    return row


@router.get("/spaces/{space}", response_model=s.SpaceOut)
def get_space(space: SpaceName, orch: Orch, who: Caller) -> dict[str, Any]:
    with orch.store.transaction() as ses:
        return s.SpaceOut.model_validate(space_for(ses, who, space), from_attributes=True).wire()


def audit_kind(k: Kind) -> str:
    """The name a kind has in the audit trail: `connection`, `data-source`, `service-info`, ..."""
    return k.label.replace(" ", "-")


def _register(k: Kind) -> None:
    tag: list[str | Enum] = [k.label]
    kind = audit_kind(k)

    def list_(space: SpaceName, orch: Orch, who: Caller) -> list[dict[str, Any]]:
        with orch.store.transaction() as ses:
            sp = space_for(ses, who, space)
            return [
                repo.view(session=ses, k=k, row=r) for r in repo.list_rows(session=ses, k=k, space_id=sp.id)
            ]

    def create(
        space: SpaceName, orch: Orch, who: Caller, response: Response, body: Any = Body()
    ) -> dict[str, Any]:
        with orch.store.transaction() as ses:
            sp = space_for(ses, who, space, Need.WRITE)
            row = repo.create(session=ses, k=k, space_id=sp.id, body=body, vault=orch.vault)
            audit.record(ses, who, "create", kind, getattr(row, k.name_attr), space_id=sp.id, id=row.id)
            response.status_code = 201
            return repo.view(session=ses, k=k, row=row)

    def put(
        space: SpaceName, name: ObjectRef, orch: Orch, who: Caller, response: Response, body: Any = Body()
    ) -> dict[str, Any]:
        with orch.store.transaction() as ses:
            sp = space_for(ses, who, space, Need.WRITE)
            row, created = repo.replace(
                session=ses, k=k, space_id=sp.id, name=name, body=body, vault=orch.vault
            )
            action = "create" if created else "change"
            audit.record(ses, who, action, kind, name, space_id=sp.id, id=row.id)
            response.status_code = 201 if created else 200
            return repo.view(session=ses, k=k, row=row)

    def get(space: SpaceName, name: ObjectRef, orch: Orch, who: Caller) -> dict[str, Any]:
        with orch.store.transaction() as ses:
            sp = space_for(ses, who, space)
            return repo.view(session=ses, k=k, row=repo.find(session=ses, k=k, space_id=sp.id, ref=name))

    def patch(
        space: SpaceName, name: ObjectRef, orch: Orch, who: Caller, changes: dict[str, Any] = Body()
    ) -> dict[str, Any]:
        with orch.store.transaction() as ses:
            sp = space_for(ses, who, space, Need.WRITE)
            row = repo.patch(session=ses, k=k, space_id=sp.id, ref=name, changes=changes, vault=orch.vault)
            audit.record(
                ses,
                who,
                "change",
                kind,
                getattr(row, k.name_attr),
                space_id=sp.id,
                id=row.id,
                fields=sorted(str(c) for c in changes)[:50],
            )
            return repo.view(session=ses, k=k, row=row)

    def delete(space: SpaceName, name: ObjectRef, orch: Orch, who: Caller) -> Response:
        with orch.store.transaction() as ses:
            sp = space_for(ses, who, space, Need.WRITE)
            row = repo.find(session=ses, k=k, space_id=sp.id, ref=name)
            audit.record(ses, who, "delete", kind, getattr(row, k.name_attr), space_id=sp.id, id=row.id)
            repo.delete(session=ses, k=k, space_id=sp.id, ref=name)
        return Response(status_code=204)

    create.__annotations__["body"] = k.body
    put.__annotations__["body"] = k.body
    base = f"/spaces/{{space}}/{k.path}"
    op = k.path.replace("-", "_")
    router.add_api_route(
        base,
        list_,
        methods=["GET"],
        response_model=list[k.view],  # type: ignore[name-defined]
        tags=tag,
        operation_id=f"list_{op}",
    )
    router.add_api_route(
        base,
        create,
        methods=["POST"],
        response_model=k.view,
        status_code=201,
        tags=tag,
        operation_id=f"create_{op}",
    )
    router.add_api_route(
        f"{base}/{{name}}", get, methods=["GET"], response_model=k.view, tags=tag, operation_id=f"get_{op}"
    )
    router.add_api_route(
        f"{base}/{{name}}", put, methods=["PUT"], response_model=k.view, tags=tag, operation_id=f"put_{op}"
    )
    router.add_api_route(
        f"{base}/{{name}}",
        patch,
        methods=["PATCH"],
        response_model=k.view,
        tags=tag,
        operation_id=f"patch_{op}",
    )
    router.add_api_route(
        f"{base}/{{name}}", delete, methods=["DELETE"], status_code=204, tags=tag, operation_id=f"delete_{op}"
    )


for _kind in repo.KINDS.values():
    _register(_kind)


@router.post("/spaces/{space}/connections/{name}/test", tags=["connection"])
async def test_connection(space: SpaceName, name: ObjectRef, orch: Orch, who: Caller) -> dict[str, Any]:
    """Open the connection with its stored credentials and report what went wrong in one line."""
    from connectors.base import ConnectionConfig
    from connectors.errors import AtomError

    def load(ses: Any) -> ConnectionConfig:
        sp = space_for(ses, who, space, Need.WRITE)
        row: m.Connection = repo.find(session=ses, k=repo.KINDS["connections"], space_id=sp.id, ref=name)
        return ConnectionConfig(
            connect_type=row.connect_type,
            addr=row.connect_addr,
            port=row.connect_port,
            account=row.connect_account,
            password=orch.vault.decrypt(row.connect_password_enc) if row.connect_password_enc else "",
            space=row.connect_space,
            colony_type=row.colony_type,
            source_conf=row.source_conf or {},
        )

    config = await orch.db(load)
    try:
        from connectors.registry import open_connector

        async with open_connector(config) as conn:
            await conn.ping()
    except AtomError as exc:
        return {"ok": False, "msg": str(exc)}
    return {"ok": True, "msg": f"{config.describe()} answered"}
