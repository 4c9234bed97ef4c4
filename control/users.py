"""Users, their passwords (argon2id via argon2-cffi), personal tokens and space memberships.

Store-level operations used by the API routes, the CLI's bootstrap commands and tests; each
takes the caller's session so it lands in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from control.access import Role, Scope
from control.errors import Conflict, NotFound, Unauthorized
from control.secrets import new_token, token_hash
from control.store import models as m
from control.store.models import utcnow

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
