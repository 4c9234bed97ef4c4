"""Space quota bodies: `GET` / `PUT /api/v1/spaces/{space}/quota`."""

from __future__ import annotations

from pydantic import Field

from control.schemas._base import Wire

MAX_CPU = 1_000_000.0
MAX_GPU = 100_000
MAX_MEMORY_MIB = 2**31 - 1  # 2 PiB: what the INTEGER column holds


class QuotaLimits(Wire):
    """A space's limits; null: no limit. Memory in MiB."""

    cpu: float | None = Field(default=None, ge=0, le=MAX_CPU, description="CPUs (null: no limit)")
    gpu: int | None = Field(default=None, ge=0, le=MAX_GPU, description="GPUs (null: no limit)")
    memory: int | None = Field(default=None, ge=0, le=MAX_MEMORY_MIB, description="MiB (null: no limit)")


class QuotaUsage(Wire):
    """What the space's held reservations add up to (memory in MiB)."""

    cpu: float = 0.0
    gpu: int = 0
    memory: int = 0


class ReservationOut(Wire):
    run_id: int
    state: str
    """TRYING (being dispatched) or CONFIRMED (started)."""
    cpu: float
    gpu: int
    memory: int


class QuotaOut(Wire):
    space: str
    limits: QuotaLimits
    used: QuotaUsage
    reservations: list[ReservationOut] = Field(default_factory=list)
    """The held reservations, oldest first."""
    waiting: int = 0
    """Runs of the space waiting for quota."""
