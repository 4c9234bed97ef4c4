"""The audit trail: `GET /api/v1/spaces/{space}/audit` (its owners), `GET /api/v1/audit` (site admins).

Newest first, filtered by time, actor, action and kind; `total` counts every matching event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from control.access import Principal, space_for
from control.api.deps import Caller, Orch, require_user
from control.api.params import MAX_ID
from control.errors import Forbidden
from control.schemas import Wire
from control.store import models as m
from control.store.repo import count

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_user)], tags=["audit"])

A = m.AuditEvent


class AuditEventOut(Wire):
    id: int
    at: datetime
    space: str | None = Field(description="the space's name (None: a site-wide event or a deleted space)")
    space_id: int | None
    actor: str
    action: str = Field(description="create, change, delete, start, stop, approve, ...")
    kind: str = Field(description="space, connection, data-source, node, run, service, ...")
    name: str
    detail: dict[str, Any] = Field(description="what changed (field names, ids); never a secret")


class AuditPage(Wire):
    items: list[AuditEventOut]
    total: int
    """How many events match the filters (not only this page)."""


class AuditFilter(BaseModel):
    """The query both trails take."""

    since: datetime | None = Field(None, description="only events at or after this time (ISO 8601, UTC)")
    actor: str | None = Field(
        None, max_length=128, description="only events by this user (`local-admin`, `api-token`)"
    )
    action: str | None = Field(
        None, max_length=32, description="only this action: create, change, delete, start, ..."
    )
    kind: str | None = Field(
        None, max_length=32, description="only this kind: space, connection, node, run, service, ..."
    )
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_ID)


Filter = Annotated[AuditFilter, Query()]


def page(ses: Session, conditions: list[ColumnElement[bool]], f: AuditFilter) -> AuditPage:
    if f.since is not None:
        since = f.since
        conditions.append(A.at >= (since.astimezone(UTC).replace(tzinfo=None) if since.tzinfo else since))
    for col, value in ((A.actor, f.actor), (A.action, f.action), (A.kind, f.kind)):
        if value is not None:
            conditions.append(col == value)
    total = count(session=ses, stmt=select(A.id).where(*conditions))
    stmt = select(A).where(*conditions).order_by(A.id.desc()).limit(f.limit).offset(f.offset)
    rows = ses.scalars(stmt).all()
    ids = {r.space_id for r in rows if r.space_id is not None}
    spaces = select(m.Space.id, m.Space.space_name).where(m.Space.id.in_(ids))
    names = {space_id: name for space_id, name in ses.execute(spaces)}
    items = [
        AuditEventOut(
            id=r.id,
            at=r.at,
            space=names.get(r.space_id) if r.space_id is not None else None,
            space_id=r.space_id,
            actor=r.actor,
            action=r.action,
            kind=r.kind,
            name=r.name,
            detail=r.detail or {},
        )
        for r in rows
    ]
    return AuditPage(items=items, total=total)


@router.get("/spaces/{space}/audit", response_model=AuditPage)
def space_audit(space: str, orch: Orch, who: Caller, f: Filter) -> AuditPage:
    """The space's audit trail, newest first (owners of the space and site admins, any token scope)."""
    with orch.store.transaction() as ses:
        sp = space_for(ses, who, space, owner_view=True)
        return page(ses, [A.space_id == sp.id], f)


def require_site_admin(who: Principal) -> None:
    if not who.admin or who.spaces is not None:
        raise Forbidden(
            f"{who.name}: the whole audit trail is for site admins (a token not limited to spaces)"
        )


@router.get("/audit", response_model=AuditPage)
def site_audit(orch: Orch, who: Caller, f: Filter) -> AuditPage:
    """Every audit event, newest first (site admins)."""
    require_site_admin(who)
    with orch.store.transaction() as ses:
        return page(ses, [], f)
