"""Plain resource routes: `/api/v1/spaces/{space}/{kind}[/{name}]` for every static entity.

One set of handlers is registered per kind with that kind's own body schema, so the
OpenAPI document names every field and unknown fields are refused.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from fastapi import APIRouter, Body, Depends, Request, Response

from control import schemas as s
from control.api.deps import Orch, require_user
from control.store import repo
from control.store.repo import Kind

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_user)], tags=["resources"])


@router.get("/spaces", response_model=list[s.SpaceOut])
def list_spaces(orch: Orch) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from control.store import models as m

    with orch.store.transaction() as ses:
        rows = ses.scalars(select(m.Space).order_by(m.Space.id)).all()
        return [s.SpaceOut.model_validate(r, from_attributes=True).wire() for r in rows]


@router.put("/spaces/{space}", response_model=s.SpaceOut)
def put_space(space: str, orch: Orch, response: Response, body: s.SpaceIn | None = None) -> dict[str, Any]:
    with orch.store.transaction() as ses:
        row, created = repo.ensure_space(
            session=ses, name=space, description=body.description if body else ""
        )
        response.status_code = 201 if created else 200
        return s.SpaceOut.model_validate(row, from_attributes=True).wire()


@router.get("/spaces/{space}", response_model=s.SpaceOut)
def get_space(space: str, orch: Orch) -> dict[str, Any]:
    with orch.store.transaction() as ses:
        return s.SpaceOut.model_validate(
            repo.get_space(session=ses, space=space), from_attributes=True
        ).wire()


def _register(k: Kind) -> None:
    tag: list[str | Enum] = [k.label]

    def list_(space: str, orch: Orch) -> list[dict[str, Any]]:
        with orch.store.transaction() as ses:
            sp = repo.get_space(session=ses, space=space)
            return [
                repo.view(session=ses, k=k, row=r) for r in repo.list_rows(session=ses, k=k, space_id=sp.id)
            ]

    def create(space: str, orch: Orch, response: Response, body: Any = Body()) -> dict[str, Any]:
        with orch.store.transaction() as ses:
            sp = repo.get_space(session=ses, space=space)
            row = repo.create(session=ses, k=k, space_id=sp.id, body=body, vault=orch.vault)
            response.status_code = 201
            return repo.view(session=ses, k=k, row=row)

    def put(space: str, name: str, orch: Orch, response: Response, body: Any = Body()) -> dict[str, Any]:
        with orch.store.transaction() as ses:
            sp = repo.get_space(session=ses, space=space)
            row, created = repo.replace(
                session=ses, k=k, space_id=sp.id, name=name, body=body, vault=orch.vault
            )
            response.status_code = 201 if created else 200
            return repo.view(session=ses, k=k, row=row)

    def get(space: str, name: str, orch: Orch) -> dict[str, Any]:
        with orch.store.transaction() as ses:
            sp = repo.get_space(session=ses, space=space)
            return repo.view(session=ses, k=k, row=repo.find(session=ses, k=k, space_id=sp.id, ref=name))

    def patch(space: str, name: str, orch: Orch, changes: dict[str, Any] = Body()) -> dict[str, Any]:
        with orch.store.transaction() as ses:
            sp = repo.get_space(session=ses, space=space)
            row = repo.patch(session=ses, k=k, space_id=sp.id, ref=name, changes=changes, vault=orch.vault)
            return repo.view(session=ses, k=k, row=row)

    def delete(space: str, name: str, orch: Orch) -> Response:
        with orch.store.transaction() as ses:
            sp = repo.get_space(session=ses, space=space)
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
async def test_connection(space: str, name: str, orch: Orch, request: Request) -> dict[str, Any]:
    """Open the connection with its stored credentials and report what went wrong in one line."""
    from connectors.base import ConnectionConfig
    from connectors.errors import AtomError
    from control.store import models as m

    def load(ses: Any) -> ConnectionConfig:
        sp = repo.get_space(session=ses, space=space)
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
