"""The stable endpoint of a model's services: one routing front per model and space."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control.store.base import Base, Id, Stamp, fk, utcnow


class ServiceFront(Base):
    """A routing front (`atom-runtime front`): one endpoint that splits a model's requests between
    its ready versions by weight, mirrors a share to a candidate, and keeps answering while
    control is down. Started by control beside the first ready local service of the model."""

    __tablename__ = "service_fronts"
    __table_args__ = (UniqueConstraint("space_id", "model_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    space_id: Mapped[int | None] = mapped_column(Id, ForeignKey("spaces.id"), nullable=True, index=True)
    model_id: Mapped[int] = fk("models.id")
    front_name: Mapped[str] = mapped_column(String(63))
    """`{type}-{model}`: the service name without the version (seed 001's shared domain)."""
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    endpoint: Mapped[str | None] = mapped_column(String(512), nullable=True)
    adapter: Mapped[str] = mapped_column(String(16), default="local")
    external_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    token_enc: Mapped[str] = mapped_column(Text, default="")
    """The front's admin token, encrypted with control's key (routing tables are pushed with it)."""
    state: Mapped[str] = mapped_column(String(24), default="starting")
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Stamp, default=utcnow, onupdate=utcnow)
