"""Store models of who may do what: users, their tokens and space roles, quota holds, the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control.store.base import Base, Id, Stamp, fk, utcnow


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_name: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    """An argon2id hash (argon2-cffi); None: the user cannot log in with a password."""
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    """ACTIVE or DISABLED (seed 004's Actived / NotActive)."""
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)


class Token(Base):
    """A personal API token: only its sha256 is kept; `scope` caps what it may do, `spaces` where."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = fk("users.id", ondelete="CASCADE")
    token_name: Mapped[str] = mapped_column(String(128), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16), default="write")
    """read, write or admin."""
    spaces: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    """Names of the spaces the token reaches; None: every space of its user."""
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)


class SpaceMember(Base):
    """A user's role in a space: owner, member or viewer."""

    __tablename__ = "space_members"
    __table_args__ = (UniqueConstraint("space_id", "user_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    space_id: Mapped[int] = fk("spaces.id", ondelete="CASCADE")
    user_id: Mapped[int] = fk("users.id", ondelete="CASCADE")
    role: Mapped[str] = mapped_column(String(16), default="member")
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)


class Reservation(Base):
    """A run's hold on its space's quota (seed 004's try-confirm-cancel), one per run."""

    __tablename__ = "reservations"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    runtime_id: Mapped[int] = mapped_column(Id, ForeignKey("runtimes.id", ondelete="CASCADE"), unique=True)
    space_id: Mapped[int] = fk("spaces.id", ondelete="CASCADE")
    cpu: Mapped[float] = mapped_column(Float, default=0)
    gpu: Mapped[int] = mapped_column(BigInteger, default=0)
    memory: Mapped[int] = mapped_column(BigInteger, default=0)
    """MiB, totalled over the run's nodes (siMemory x siNodeNum may pass a 32-bit integer)."""
    state: Mapped[str] = mapped_column(String(16), default="TRYING", index=True)
    """TRYING (held, not yet dispatched), CONFIRMED (the run started), CANCELLED (released)."""
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow, onupdate=utcnow)


class AuditEvent(Base):
    """Who did what to which object, and when; `detail` never holds a secret."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(Stamp, default=utcnow, index=True)
    space_id: Mapped[int | None] = mapped_column(Id, nullable=True, index=True)
    """No foreign key: the record outlives the space."""
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
