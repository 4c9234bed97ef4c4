"""Objects a user route may touch: each lookup checks the caller's role in the object's space.

An object in a space the caller cannot read answers the very 404 a missing one does, so the
body never tells whether another tenant has it; one the caller can read but not change is a 403.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from control.access import Need, Principal, allow
from control.errors import NotFound
from control.store import models as m


def run_of(session: Session, who: Principal, run_id: int, need: Need = Need.READ) -> m.Runtime:
    """Run `run_id`, if `who` meets `need` in its space (runs without a space: site admins)."""
    missing = f"run {run_id} does not exist"
    run = session.get(m.Runtime, run_id)
    if run is None:
        raise NotFound(missing)
    allow(session, who, run.space_id, need, missing)
    return run


def service_of(session: Session, who: Principal, service_id: int, need: Need = Need.READ) -> m.Service:
    """Service `service_id`, if `who` meets `need` in its space."""
    missing = f"service {service_id} does not exist"
    svc = session.get(m.Service, service_id)
    if svc is None:
        raise NotFound(missing)
    allow(session, who, svc.space_id, need, missing)
    return svc
