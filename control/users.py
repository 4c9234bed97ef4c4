"""Users, their passwords (argon2id via argon2-cffi), personal tokens and space memberships.

Store-level operations used by the API routes, the CLI's bootstrap commands and tests; each
takes the caller's session so it lands in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from control.access import LEVEL_OF_SCOPE, Principal, Role, Scope
from control.errors import Conflict, Forbidden, InvalidSpec, NotFound, Unauthorized
from control.secrets import new_token, token_hash
from control.store import models as m
from control.store.models import utcnow
from control.store.repo import as_id

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(stored: str | None, password: str) -> bool:
    if not stored:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def get_user(session: Session, name: str) -> m.User:
    user = session.scalar(select(m.User).where(m.User.user_name == name))
    if user is None:
        raise NotFound(f"user {name!r} does not exist")
    return user


def create_user(session: Session, name: str, password: str | None = None, *, admin: bool = False) -> m.User:
    """A new active user; Conflict when the name is taken."""
    if session.scalar(select(m.User.id).where(m.User.user_name == name)) is not None:
        raise Conflict(f"user {name!r} already exists")
    user = m.User(
        user_name=name,
        password_hash=hash_password(password) if password else None,
        is_admin=admin,
        state="ACTIVE",
    )
    session.add(user)
    session.flush()
    return user


def check_login(session: Session, name: str, password: str) -> m.User:
    """The user if `password` is theirs; one message for an unknown user and a wrong password."""
    user = session.scalar(select(m.User).where(m.User.user_name == name))
    if user is None:
        _hasher.hash(password)  # the same time whether or not the user exists
        raise Unauthorized("wrong user name or password")
    if not password_matches(user.password_hash, password):
        raise Unauthorized("wrong user name or password")
    if user.state != "ACTIVE":
        raise Unauthorized(f"user {name!r} is disabled")
    if _hasher.check_needs_rehash(user.password_hash or ""):
        user.password_hash = hash_password(password)
    return user


@dataclass(frozen=True)
class IssuedToken:
    """A token as made: `secret` is shown once, only its hash is stored."""

    row: m.Token
    secret: str


def issue_token(
    session: Session,
    user: m.User,
    name: str,
    *,
    scope: Scope = Scope.WRITE,
    spaces: list[str] | None = None,
    expires_at: datetime | None,
) -> IssuedToken:
    """A new personal token for `user`; Conflict when the user already has a live one of that name."""
    taken = session.scalar(
        select(m.Token.id).where(
            m.Token.user_id == user.id, m.Token.token_name == name, m.Token.revoked_at.is_(None)
        )
    )
    if taken is not None:
        raise Conflict(
            f"user {user.user_name!r} already has a token named {name!r}: revoke it or pick another name"
        )
    secret = "atom_" + new_token()
    row = m.Token(
        user_id=user.id,
        token_name=name,
        token_hash=token_hash(secret),
        scope=scope.value,
        spaces=sorted(set(spaces)) if spaces is not None else None,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return IssuedToken(row=row, secret=secret)


def revoke_token(session: Session, token: m.Token) -> m.Token:
    """Revoke `token` (idempotent: a revoked token keeps its first revocation time)."""
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def set_member(session: Session, space: m.Space, user: m.User, role: Role) -> m.SpaceMember:
    """Give `user` `role` in `space` (replacing their former role)."""
    row = session.scalar(
        select(m.SpaceMember).where(m.SpaceMember.space_id == space.id, m.SpaceMember.user_id == user.id)
    )
    if row is None:
        row = m.SpaceMember(space_id=space.id, user_id=user.id, role=role.value)
        session.add(row)
    else:
        row.role = role.value
    session.flush()
    return row


def remove_member(session: Session, space: m.Space, user: m.User) -> bool:
    row = session.scalar(
        select(m.SpaceMember).where(m.SpaceMember.space_id == space.id, m.SpaceMember.user_id == user.id)
    )
    if row is None:
        return False
    session.delete(row)
    return True


# -- what the API and the CLI build on ------------------------------------------------------------


def require_site_admin(who: Principal, what: str) -> None:
    """Refuse (403) unless `who` is a site admin calling with a token of scope admin."""
    if not who.admin:
        raise Forbidden(f"{who.name} is not a site admin and may not {what}")
    if who.scope is not Scope.ADMIN:
        raise Forbidden(f"{who.name}: a token with scope {who.scope.value} may not {what}")


def list_users(session: Session) -> list[m.User]:
    return list(session.scalars(select(m.User).order_by(m.User.id)))


def visible_user(session: Session, who: Principal, name: str) -> m.User:
    """The user `name`, if `who` is that user or a site admin; otherwise the same 404 as a missing one."""
    user = get_user(session, name)
    if who.admin or user.id == who.user_id:
        return user
    raise NotFound(f"user {name!r} does not exist")


def first_user_rule(who: Principal, admin: bool) -> None:
    """The implied local admin creates the first user: it must be an admin, or nobody could manage the
    server once every call needs a token."""
    if who.kind == "local" and not admin:
        raise InvalidSpec(
            "the first user must be a site admin (admin: true / --admin): once a user exists every call "
            "needs a token",
            field="admin",
        )


def active_admins(session: Session) -> int:
    return len(
        session.scalars(select(m.User.id).where(m.User.is_admin.is_(True), m.User.state == "ACTIVE")).all()
    )


def change_user(
    session: Session,
    who: Principal,
    user: m.User,
    *,
    state: str | None = None,
    admin: bool | None = None,
    password: str | None = None,
    old_password: str | None = None,
) -> list[str]:
    """Apply a change to `user` as `who` may; return the names of what changed.

    Site admins change anything; users change only their own password, with the old one.
    """
    changed: list[str] = []
    if state is not None or admin is not None:
        require_site_admin(who, f"change user {user.user_name!r}")
        demoted = (state == "DISABLED" or admin is False) and user.is_admin and user.state == "ACTIVE"
        if demoted and active_admins(session) <= 1:
            raise Conflict(f"{user.user_name!r} is the last active site admin: make another admin first")
        if state is not None and state != user.state:
            user.state = state
            changed.append("state")
        if admin is not None and admin != user.is_admin:
            user.is_admin = admin
            changed.append("admin")
    if password is not None:
        if user.id == who.user_id and not who.admin:
            if old_password is None or not password_matches(user.password_hash, old_password):
                raise Forbidden(f"{user.user_name}: the old password is wrong (oldPassword)")
        elif user.id != who.user_id:
            require_site_admin(who, f"set the password of {user.user_name!r}")
        elif old_password is not None and not password_matches(user.password_hash, old_password):
            raise Forbidden(f"{user.user_name}: the old password is wrong (oldPassword)")
        user.password_hash = hash_password(password)
        changed.append("password")
    return changed


def token_state(row: m.Token, now: datetime | None = None) -> str:
    now = now or utcnow()
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def token_view(row: m.Token, user_name: str) -> dict[str, Any]:
    """A token as listed (never its hash): the fields of `control.schemas.users.TokenOut`."""
    return {
        "id": row.id,
        "token_name": row.token_name,
        "user_name": user_name,
        "scope": row.scope,
        "spaces": row.spaces,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "last_used_at": row.last_used_at,
        "state": token_state(row),
    }


def tokens_of(session: Session, user: m.User) -> list[m.Token]:
    return list(session.scalars(select(m.Token).where(m.Token.user_id == user.id).order_by(m.Token.id)))


def token_owner(session: Session, who: Principal, user: str | None, what: str) -> m.User:
    """Whose tokens a call is about: the caller's own, or (site admins) `user`'s."""
    if user is not None:
        target = get_user(session, user) if who.admin else visible_user(session, who, user)
        if target.id != who.user_id:
            require_site_admin(who, what)
        return target
    if who.user_id is None:
        raise Forbidden(
            f"{who.name} is not a user and has no tokens: create a user (`atom users create NAME --admin`) "
            "and log in as them"
        )
    return session.get_one(m.User, who.user_id)


def find_token(session: Session, user: m.User, ref: str) -> m.Token:
    """One of `user`'s tokens by id or by name (a live one first, else the newest of that name)."""
    stmt = select(m.Token).where(m.Token.user_id == user.id)
    ident = as_id(ref)
    if ident is not None:
        row = session.scalar(stmt.where(m.Token.id == ident))
    else:
        rows = list(session.scalars(stmt.where(m.Token.token_name == ref).order_by(m.Token.id.desc())))
        row = next((r for r in rows if r.revoked_at is None), rows[0] if rows else None)
    if row is None:
        raise NotFound(f"{user.user_name} has no token {ref!r} (see `atom tokens list`)")
    return row


def mintable(who: Principal, scope: Scope, spaces: list[str] | None) -> list[str] | None:
    """The spaces a token made by `who` may have; Forbidden when it would reach further than `who`."""
    if LEVEL_OF_SCOPE[scope] > LEVEL_OF_SCOPE[who.scope]:
        raise Forbidden(
            f"{who.name}: a token with scope {who.scope.value} cannot make one with scope {scope.value}"
        )
    if who.spaces is None:
        return spaces
    if spaces is None:
        return sorted(who.spaces)
    beyond = sorted(set(spaces) - who.spaces)
    if beyond:
        raise Forbidden(
            f"{who.name}: this token reaches only {', '.join(sorted(who.spaces))} and cannot make one "
            f"for {', '.join(beyond)}"
        )
    return spaces


def members_of(session: Session, space: m.Space) -> list[tuple[m.SpaceMember, str]]:
    rows = session.execute(
        select(m.SpaceMember, m.User.user_name)
        .join(m.User, m.User.id == m.SpaceMember.user_id)
        .where(m.SpaceMember.space_id == space.id)
        .order_by(m.User.user_name)
    ).all()
    return [(row, name) for row, name in rows]


def keep_an_owner(session: Session, space: m.Space, user: m.User, new_role: Role | None) -> None:
    """Refuse (409) to remove or demote the last owner of `space`."""
    if new_role is Role.OWNER:
        return
    owners = [u for r, u in members_of(session, space) if r.role == Role.OWNER.value]
    if owners == [user.user_name]:
        raise Conflict(
            f"{user.user_name!r} is the last owner of space {space.space_name!r}: make another owner first"
        )


def on_space_created(session: Session, who: Principal, space: m.Space) -> None:
    """Make the user who created `space` its owner (the local admin and the API token own all spaces)."""
    if who.user_id is not None:
        user = session.get(m.User, who.user_id)
        if user is not None:
            set_member(session, space, user, Role.OWNER)
