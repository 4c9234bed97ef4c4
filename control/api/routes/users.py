"""Users, logins and who-am-I: `/api/v1/users`, `/api/v1/login`, `/api/v1/auth`.

Personal tokens (`/api/v1/tokens`) and space members (`/api/v1/spaces/{space}/members`) live in
their own modules and are mounted here, so the app includes one router for all of it.

A fresh install has no users: every caller is then the implied local admin, who creates the
first user (a site admin). From then on every call needs a token, which `POST /api/v1/login`
hands out for a user name and password.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from control import audit, users
from control.access import Scope, expiry
from control.api.deps import Caller, Orch
from control.api.routes import members, tokens
from control.api.routes.tokens import UserRef, issued_view
from control.errors import Unauthorized
from control.login_throttle import LoginThrottle
from control.schemas.users import LoginIn, TokenIssued, UserIn, UserOut, UserPatch, WhoAmI
from control.store import models as m
from control.store.models import utcnow

router = APIRouter(prefix="/api/v1", tags=["users"])


def user_view(user: m.User) -> dict[str, Any]:
    return UserOut(
        id=user.id,
        user_name=user.user_name,
        admin=user.is_admin,
        state=user.state,
        created_at=user.created_at,
    ).wire()


@router.post("/users", status_code=201, response_model=UserOut)
def create_user(body: UserIn, who: Caller, orch: Orch) -> dict[str, Any]:
    """A new user (site admins; on a fresh install the implied local admin makes the first, an admin)."""
    with orch.store.transaction() as ses:
        users.require_site_admin(who, "create users")
        users.first_user_rule(who, body.admin)
        user = users.create_user(ses, body.user_name, body.password, admin=body.admin)
        audit.record(ses, who, "create", "user", user.user_name, admin=user.is_admin)
        return user_view(user)


@router.get("/users", response_model=list[UserOut])
def list_users(who: Caller, orch: Orch) -> list[dict[str, Any]]:
    with orch.store.transaction() as ses:
        users.require_site_admin(who, "list users")
        return [user_view(u) for u in users.list_users(ses)]


@router.get("/users/{user}", response_model=UserOut)
def get_user(user: UserRef, who: Caller, orch: Orch) -> dict[str, Any]:
    """A user: yourself, or anyone for a site admin."""
    with orch.store.transaction() as ses:
        return user_view(users.visible_user(ses, who, user))


@router.put("/users/{user}", response_model=UserOut)
def change_user(user: UserRef, body: UserPatch, who: Caller, orch: Orch) -> dict[str, Any]:
    """Disable or enable a user, make or unmake an admin (site admins); change a password (yourself,
    with `oldPassword`, or a site admin)."""
    with orch.store.transaction() as ses:
        row = users.visible_user(ses, who, user)
        changed = users.change_user(
            ses,
            who,
            row,
            state=body.state,
            admin=body.admin,
            password=body.password,
            old_password=body.old_password,
        )
        if changed:
            audit.record(ses, who, "change", "user", row.user_name, changed=changed, state=row.state)
        return user_view(row)


def login_throttle(request: Request) -> LoginThrottle:
    """The app's throttle, made on first use from control's settings."""
    throttle: LoginThrottle | None = getattr(request.app.state, "login_throttle", None)
    if throttle is None:
        settings = request.app.state.settings
        throttle = LoginThrottle(max_failures=settings.login_max_failures, window=settings.login_window_s)
        request.app.state.login_throttle = throttle
    return throttle


@router.post("/login", response_model=TokenIssued)
def login(body: LoginIn, orch: Orch, request: Request) -> dict[str, Any]:
    """A new token for a user name and password; the secret is in this answer only.

    Too many wrong passwords for one user name, or from one address, lately: 429 until the
    window (ATOM_LOGIN_WINDOW_S) has passed.
    """
    throttle = login_throttle(request)
    client = request.client.host if request.client else "unknown"
    throttle.check(body.user_name, client)
    with orch.store.transaction() as ses:
        try:
            user = users.check_login(ses, body.user_name, body.password)
        except Unauthorized:
            throttle.failed(body.user_name, client)
            raise
        throttle.succeeded(body.user_name)
        name = body.token_name or f"login-{utcnow():%Y%m%d-%H%M%S-%f}"
        made = users.issue_token(
            ses,
            user,
            name,
            scope=Scope(body.scope),
            spaces=None,
            expires_at=expiry(orch.settings, body.expires_in_days),
        )
        audit.record(ses, user.user_name, "login", "user", user.user_name, label=name, scope=body.scope)
        return issued_view(made, user.user_name)


@router.get("/auth", response_model=WhoAmI)
def whoami(who: Caller, orch: Orch) -> dict[str, Any]:
    """Who the caller's token stands for (`local` when no login is needed)."""
    token_name = None
    if who.token_id is not None:
        with orch.store.transaction() as ses:
            row = ses.get(m.Token, who.token_id)
            token_name = row.token_name if row else None
    return WhoAmI(
        user_name=who.name,
        admin=who.admin,
        scope=who.scope.value,
        spaces=sorted(who.spaces) if who.spaces is not None else None,
        kind=who.kind,
        token_id=who.token_id,
        token_name=token_name,
    ).wire()


router.include_router(tokens.router)
router.include_router(members.router)
