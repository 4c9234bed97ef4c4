"""Space members: `/api/v1/spaces/{space}/members[/{user}]`, for the space's owners and site admins.

Mounted by `control.api.routes.users`. A space keeps at least one owner.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from control import audit, users
from control.access import Need, Role, space_for
from control.api.deps import Caller, Orch
from control.api.params import SpaceName
from control.api.routes.tokens import UserRef
from control.schemas.users import MemberIn, MemberOut

router = APIRouter(tags=["members"])


def member_view(row: Any, user_name: str) -> dict[str, Any]:
    return MemberOut(user_name=user_name, role=row.role, created_at=row.created_at).wire()


@router.get("/spaces/{space}/members", response_model=list[MemberOut])
def list_members(space: SpaceName, who: Caller, orch: Orch) -> list[dict[str, Any]]:
    with orch.store.transaction() as ses:
        sp = space_for(ses, who, space, owner_view=True)
        return [member_view(row, name) for row, name in users.members_of(ses, sp)]


@router.put("/spaces/{space}/members/{user}", response_model=MemberOut)
def set_member(space: SpaceName, user: UserRef, body: MemberIn, who: Caller, orch: Orch) -> dict[str, Any]:
    """Give a user a role in the space (owner, member or viewer), replacing the one they had."""
    with orch.store.transaction() as ses:
        sp = space_for(ses, who, space, Need.OWN)
        target = users.get_user(ses, user)
        role = Role(body.role)
        users.keep_an_owner(ses, sp, target, role)
        row = users.set_member(ses, sp, target, role)
        audit.record(ses, who, "change", "member", target.user_name, space_id=sp.id, role=role.value)
        return member_view(row, target.user_name)


@router.delete("/spaces/{space}/members/{user}", status_code=204)
def remove_member(space: SpaceName, user: UserRef, who: Caller, orch: Orch) -> Response:
    """Take a user out of the space (nothing happens when they were not in it)."""
    with orch.store.transaction() as ses:
        sp = space_for(ses, who, space, Need.OWN)
        target = users.get_user(ses, user)
        users.keep_an_owner(ses, sp, target, None)
        if users.remove_member(ses, sp, target):
            audit.record(ses, who, "delete", "member", target.user_name, space_id=sp.id)
    return Response(status_code=204)
