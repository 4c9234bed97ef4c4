"""Personal tokens: `/api/v1/tokens` (list, make, revoke). Mounted by `control.api.routes.users`.

A token is shown once, when it is made; lists show its name, scope, spaces, times and state,
never the secret nor its hash. A token cannot make one that reaches further than itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from control import audit, users
from control.access import Scope, expiry
from control.api.deps import Caller, Orch
from control.schemas.users import TOKEN_PATTERN, USER_PATTERN, TokenIn, TokenIssued, TokenOut

router = APIRouter()

TokenRef = Annotated[
    str, Path(min_length=1, max_length=128, pattern=TOKEN_PATTERN, description="a token's id or name")
]
UserRef = Annotated[str, Path(min_length=1, max_length=128, pattern=USER_PATTERN, description="a user name")]
UserQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=128, pattern=USER_PATTERN, description="this user's (site admins)"),
]


def issued_view(made: users.IssuedToken, user_name: str) -> dict[str, Any]:
    return TokenIssued(**users.token_view(made.row, user_name), token=made.secret).wire()


@router.get("/tokens", response_model=list[TokenOut], tags=["tokens"])
def list_tokens(who: Caller, orch: Orch, user: UserQuery = None) -> list[dict[str, Any]]:
    """The caller's tokens (site admins: `?user=`'s), newest last; none for the local admin."""
    with orch.store.transaction() as ses:
        if user is None and who.user_id is None:
            return []
        owner = users.token_owner(ses, who, user, "list other users' tokens")
        return [TokenOut(**users.token_view(t, owner.user_name)).wire() for t in users.tokens_of(ses, owner)]


@router.post("/tokens", status_code=201, response_model=TokenIssued, tags=["tokens"])
def create_token(body: TokenIn, who: Caller, orch: Orch) -> dict[str, Any]:
    """A new token of the caller's; the secret is in this answer only."""
    with orch.store.transaction() as ses:
        owner = users.token_owner(ses, who, None, "make tokens")
        scope = Scope(body.scope)
        spaces = users.mintable(who, scope, body.spaces)
        made = users.issue_token(
            ses,
            owner,
            body.token_name,
            scope=scope,
            spaces=spaces,
            expires_at=expiry(orch.settings, body.expires_in_days),
        )
        audit.record(ses, who, "create", "token", body.token_name, scope=scope.value, spaces=made.row.spaces)
        return issued_view(made, owner.user_name)


@router.delete("/tokens/{token}", status_code=204, tags=["tokens"])
def revoke_token(token: TokenRef, who: Caller, orch: Orch, user: UserQuery = None) -> Response:
    """Revoke one of the caller's tokens (site admins: `?user=`'s) by id or name; revoking twice is fine."""
    with orch.store.transaction() as ses:
        owner = users.token_owner(ses, who, user, "revoke other users' tokens")
        row = users.find_token(ses, owner, token)
        if row.revoked_at is None:
            users.revoke_token(ses, row)
            audit.record(ses, who, "revoke", "token", row.token_name, user=owner.user_name)
    return Response(status_code=204)
