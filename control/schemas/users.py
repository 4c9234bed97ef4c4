"""Wire bodies of users, logins, personal tokens and space members.

No body here ever carries a password hash or a token hash; a token's secret appears only in
`TokenIssued`, the answer to the call that made it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from control.schemas._base import Wire

#: user names: letters, digits and . _ @ - (an e-mail address fits), at most 128
USER_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._@-]*[A-Za-z0-9])?$"
#: token names: letters, digits, spaces and . _ @ : - , at most 128
TOKEN_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9 ._@:-]*[A-Za-z0-9])?$"
SPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

UserName = Annotated[str, Field(min_length=1, max_length=128, pattern=USER_PATTERN)]
TokenName = Annotated[str, Field(min_length=1, max_length=128, pattern=TOKEN_PATTERN)]
SpaceRef = Annotated[str, Field(min_length=1, max_length=63, pattern=SPACE_PATTERN)]
Password = Annotated[str, Field(min_length=8, max_length=1024, description="at least 8 characters")]
AnyPassword = Annotated[str, Field(min_length=1, max_length=1024)]
ScopeName = Literal["read", "write", "admin"]
RoleName = Literal["owner", "member", "viewer"]
UserState = Literal["ACTIVE", "DISABLED"]
TokenState = Literal["active", "expired", "revoked"]
Days = Annotated[int, Field(ge=1, le=3650, description="days until the token expires")]


class _Secretive(Wire):
    """A body with a password: kept exactly as typed (no whitespace stripped)."""

    model_config = ConfigDict(str_strip_whitespace=False)


class UserIn(_Secretive):
    """`POST /api/v1/users`."""

    user_name: UserName
    password: Password
    admin: bool = False


class UserPatch(_Secretive):
    """`PUT /api/v1/users/{user}`: disable or enable (admins), change the password (self or admin)."""

    state: UserState | None = None
    admin: bool | None = None
    password: Password | None = None
    """The new password."""
    old_password: AnyPassword | None = None
    """The current password: needed when users change their own."""


class UserOut(Wire):
    id: int
    user_name: str
    admin: bool
    state: str
    created_at: datetime


class LoginIn(_Secretive):
    """`POST /api/v1/login`."""

    user_name: UserName
    password: AnyPassword
    token_name: TokenName | None = None
    """None: `login-<time>`."""
    expires_in_days: Days | None = None
    """None: the server's token lifetime (ATOM_TOKEN_TTL_DAYS)."""
    scope: ScopeName = "admin"
    """admin: all the user's roles allow; read or write caps it."""


class TokenIn(Wire):
    """`POST /api/v1/tokens`: a token of the caller's, no wider than the token making it."""

    token_name: TokenName
    scope: ScopeName = "write"
    spaces: list[SpaceRef] | None = Field(default=None, max_length=100)
    """The spaces it reaches; None: every space of its user (or of the token making it)."""
    expires_in_days: Days | None = None


class TokenOut(Wire):
    """A token as listed: never its secret nor its hash."""

    id: int
    token_name: str
    user_name: str
    scope: str
    spaces: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    state: TokenState


class TokenIssued(TokenOut):
    """A token as made: `token` is the secret, shown this once."""

    token: str


class WhoAmI(Wire):
    """`GET /api/v1/auth`: who the caller's token stands for."""

    user_name: str
    admin: bool
    scope: str
    spaces: list[str] | None
    kind: str
    """local (no login needed), api-token (ATOM_API_TOKEN) or user."""
    token_id: int | None = None
    token_name: str | None = None


class MemberIn(Wire):
    """`PUT /api/v1/spaces/{space}/members/{user}`."""

    role: RoleName


class MemberOut(Wire):
    user_name: str
    role: str
    created_at: datetime
