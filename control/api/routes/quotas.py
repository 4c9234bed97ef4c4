"""Space quotas: `GET /api/v1/spaces/{space}/quota` (limits, what is held, who waits) and
`PUT` (site admins) to set them; see `control.quota` for how runs reserve them."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from control import audit, quota
from control import schemas as s
from control.access import Need, space_for
from control.api.deps import Caller, Orch, require_user
from control.api.params import SpaceName
from control.errors import Forbidden
from control.schemas.quota import QuotaLimits, QuotaOut, QuotaUsage, ReservationOut
from control.store import models as m

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_user)], tags=["quotas"])


def quota_view(session: Session, space: m.Space) -> QuotaOut:
    held = session.scalars(
        select(m.Reservation)
        .where(m.Reservation.space_id == space.id, m.Reservation.state.in_(quota.HELD))
        .order_by(m.Reservation.id)
    ).all()
    used = quota.usage(session, space.id)
    waiting = session.scalar(
        select(func.count())
        .select_from(m.Runtime)
        .where(
            m.Runtime.space_id == space.id,
            m.Runtime.state == s.RunState.PENDING.value,
            m.Runtime.reason.like("quota:%"),
        )
    )
    return QuotaOut(
        space=space.space_name,
        limits=QuotaLimits(cpu=space.quota_cpu, gpu=space.quota_gpu, memory=space.quota_memory),
        used=QuotaUsage(cpu=used.cpu, gpu=used.gpu, memory=used.memory),
        reservations=[
            ReservationOut(run_id=r.runtime_id, state=r.state, cpu=r.cpu, gpu=r.gpu, memory=r.memory)
            for r in held
        ],
        waiting=int(waiting or 0),
    )


@router.get("/spaces/{space}/quota", response_model=QuotaOut)
def get_quota(space: SpaceName, orch: Orch, who: Caller) -> QuotaOut:
    """The space's CPU, GPU and memory (MiB) limits, what its runs hold, and how many wait."""
    with orch.store.transaction() as ses:
        return quota_view(ses, space_for(ses, who, space, Need.READ))


@router.put("/spaces/{space}/quota", response_model=QuotaOut)
def put_quota(space: SpaceName, body: QuotaLimits, orch: Orch, who: Caller) -> QuotaOut:
    """Set the space's limits (null: no limit; memory in MiB). Site admins only.

    Runs waiting for quota start on the next reconcile pass once they fit.
    """
    with orch.store.transaction() as ses:
        row = space_for(ses, who, space, Need.READ)
        if not who.admin:
            raise Forbidden(
                f"{who.name} may not set quotas: only a site admin may (space {row.space_name!r})"
            )
        row = quota.lock_space(ses, row.id) or row
        row.quota_cpu, row.quota_gpu, row.quota_memory = body.cpu, body.gpu, body.memory
        audit.record(
            ses,
            who,
            "change",
            "quota",
            row.space_name,
            space_id=row.id,
            cpu=body.cpu,
            gpu=body.gpu,
            memory=body.memory,
        )
        ses.flush()
        return quota_view(ses, row)
