"""Who is calling, and what they may do where.

A caller is a `Principal`: the implied local admin of a single-user install, the bootstrap
admin token (`ATOM_API_TOKEN`), or a user holding a personal token. What a user may do in a
space is the smaller of their role there (viewer < member < owner; site admins own every
space) and their token's scope (read < write < admin), and a token that names spaces reaches
only those. A space the caller cannot read does not exist for them: the answer is the same
404 a missing one gets, so nobody learns what another tenant has.

Agent and service tokens are separate (`control.api.deps.require_run_token`, ...): each opens
its one run or service and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from control.errors import Forbidden, NotFound, Unauthorized
from control.secrets import token_hash
from control.settings import Settings
from control.store import models as m
from control.store import repo
from control.store.models import utcnow


class Scope(StrEnum):
    """What a token may do at most."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class Role(StrEnum):
    """A user's role in one space."""

    VIEWER = "viewer"
    MEMBER = "member"
    OWNER = "owner"


class Need(IntEnum):
    """What an action needs in its space: read it, change it, or manage it (members, audit, quotas)."""

    READ = 1
    WRITE = 2
    OWN = 3


LEVEL_OF_ROLE = {Role.VIEWER: Need.READ, Role.MEMBER: Need.WRITE, Role.OWNER: Need.OWN}
LEVEL_OF_SCOPE = {Scope.READ: Need.READ, Scope.WRITE: Need.WRITE, Scope.ADMIN: Need.OWN}
VERB = {Need.READ: "read", Need.WRITE: "change things", Need.OWN: "manage"}

#: a token's last use is written at most this often (one write per request would contend)
LAST_USED_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """The caller of one request."""

    name: str
    """Shown in the audit trail: a user name, `local-admin` or `api-token`."""
    kind: str = "user"
    """`local` (no login needed), `api-token` (ATOM_API_TOKEN) or `user`."""
    user_id: int | None = None
    admin: bool = False
    """A site admin: owner of every space, may manage users."""
    scope: Scope = Scope.ADMIN
    spaces: frozenset[str] | None = None
    """The spaces the token names; None: no restriction beyond the user's memberships."""
    token_id: int | None = None

    def role_level(self, session: Session, space: m.Space) -> int:
        """0 (cannot see it) or the `Need` the caller's role in `space` meets, whatever the token's scope."""
        if self.spaces is not None and space.space_name not in self.spaces:
            return 0
        if self.admin:
            return Need.OWN
        role = session.scalar(
            select(m.SpaceMember.role).where(
                m.SpaceMember.space_id == space.id, m.SpaceMember.user_id == self.user_id
            )
        )
        return 0 if role is None else LEVEL_OF_ROLE[Role(role)]

    def level_in(self, session: Session, space: m.Space) -> int:
        """0 (cannot see it) or the `Need` this caller meets in `space` (role capped by scope)."""
        role_level = self.role_level(session, space)
        return min(role_level, LEVEL_OF_SCOPE[self.scope]) if role_level else 0

    def space_ids(self, session: Session) -> set[int] | None:
        """Ids of the spaces this caller can read; None: all of them."""
        if self.admin and self.spaces is None:
            return None
        stmt = select(m.Space.id)
        if not self.admin:
            stmt = stmt.join(m.SpaceMember, m.SpaceMember.space_id == m.Space.id).where(
                m.SpaceMember.user_id == self.user_id
            )
        if self.spaces is not None:
            stmt = stmt.where(m.Space.space_name.in_(sorted(self.spaces)))
        return set(session.scalars(stmt))

    def require(
        self,
        session: Session,
        space: m.Space,
        need: Need,
        *,
        ref: str | int | None = None,
        owner_view: bool = False,
    ) -> m.Space:
        """`space` if this caller meets `need` there; the 404 a missing space gets (named by `ref`,
        as the caller asked for it) when they cannot even read it, else 403.

        owner_view: what only owners may read (members, the audit trail) needs the owner role
        but, being a read, a token of any scope.
        """
        level = self.role_level(session, space) if owner_view else self.level_in(session, space)
        want = Need.OWN if owner_view else need
        if level == 0:
            raise NotFound(repo.missing_space(space.space_name if ref is None else ref))
        if level < want:
            raise Forbidden(self.why_not(session, space, want))
        return space

    def why_not(self, session: Session, space: m.Space, need: Need) -> str:
        if LEVEL_OF_SCOPE[self.scope] < need:
            return f"{self.name}: a token with scope {self.scope.value} may not {VERB[need]} here"
        role = session.scalar(
            select(m.SpaceMember.role).where(
                m.SpaceMember.space_id == space.id, m.SpaceMember.user_id == self.user_id
            )
        )
        what = role or "not a member"
        return f"{self.name} is {what} in space {space.space_name!r} and may not {VERB[need]}"


LOCAL_ADMIN = Principal(name="local-admin", kind="local", admin=True)


def space_for(
    session: Session, who: Principal, space: str | int, need: Need = Need.READ, *, owner_view: bool = False
) -> m.Space:
    """The space `space` (a name or an id), if `who` meets `need` there (see `Principal.require`);
    one they cannot read answers what a missing one does."""
    row = repo.get_space(session=session, space=space)
    return who.require(session, row, need, ref=space, owner_view=owner_view)


def allow(session: Session, who: Principal, space_id: int | None, need: Need, missing: str) -> None:
    """Check an object found by id: raise NotFound(`missing`) unless `who` can read its space.

    Objects without a space (a `create_operators` run) belong to site admins only.
    """
    if space_id is None:
        if not who.admin or who.spaces is not None:
            raise NotFound(missing)
        return
    space = session.get(m.Space, space_id)
    if space is None:
        raise NotFound(missing)
    level = who.level_in(session, space)
    if level == 0:
        raise NotFound(missing)
    if level < need:
        raise Forbidden(who.why_not(session, space, need))


def auth_required(session: Session, settings: Settings) -> bool:
    if settings.auth_required is not None:
        return settings.auth_required
    return settings.api_token is not None or bool(session.scalar(select(exists().where(m.User.id > 0))))


def authenticate(session: Session, settings: Settings, token: str | None) -> Principal:
    """The principal a bearer token (or its absence) stands for.

    Raises:
        Unauthorized: a token is required and missing, or it is unknown, expired, revoked, or its
            user is disabled; the message says which.
    """
    if token is None:
        if auth_required(session, settings):
            raise Unauthorized("a token is required: run `atom login`, or pass --token / set ATOM_TOKEN")
        return LOCAL_ADMIN
    expected = settings.api_token
    if expected is not None:
        import hmac

        if hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
            return Principal(name="api-token", kind="api-token", admin=True)
    found = session.execute(
        select(m.Token, m.User)
        .join(m.User, m.User.id == m.Token.user_id)
        .where(m.Token.token_hash == token_hash(token))
    ).first()
    if found is None:
        if not auth_required(session, settings):
            return LOCAL_ADMIN  # a token kept from an earlier install: no login is needed here
        raise Unauthorized("the token is not valid: run `atom login` for a new one")
    row, user = found
    now = utcnow()
    if row.revoked_at is not None:
        raise Unauthorized(
            f"token {row.token_name!r} was revoked at {row.revoked_at:%Y-%m-%d %H:%M} UTC: "
            "run `atom login` or make a new token"
        )
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthorized(
            f"token {row.token_name!r} expired at {row.expires_at:%Y-%m-%d %H:%M} UTC: "
            "run `atom login` or make a new token"
        )
    if user.state != "ACTIVE":
        raise Unauthorized(f"user of token {row.token_name!r} is disabled")
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
        session.execute(update(m.Token).where(m.Token.id == row.id).values(last_used_at=now))
    return Principal(
        name=user.user_name,
        kind="user",
        user_id=user.id,
        admin=user.is_admin,
        scope=Scope(row.scope),
        spaces=frozenset(row.spaces) if row.spaces is not None else None,
        token_id=row.id,
    )


def expiry(settings: Settings, days: float | None) -> datetime:
    """When a new token expires: `days` from now, else the configured lifetime."""
    return utcnow() + timedelta(days=days if days is not None else settings.token_ttl_days)
