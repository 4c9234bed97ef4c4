"""Objects a user route may touch: each lookup checks the caller's role in the object's space.

An object in a space the caller cannot read answers the very 404 a missing one does, so the
body never tells whether another tenant has it; one the caller can read but not change is a 403.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.orm import Session

from control.access import Need, Principal, allow
from control.errors import NotFound
from control.store import models as m

T = TypeVar("T", m.Runtime, m.Service, m.Exam, m.ExamRun)


def object_of(session: Session, who: Principal, model: type[T], ident: int, noun: str, need: Need) -> T:
    """Row `ident` of `model` (a run, service, exam or exam run), if `who` meets `need` in its space; one in a
    space they cannot read is as missing as one that does not exist."""
    missing = f"{noun} {ident} does not exist"
    row = session.get(model, ident)
    if row is None:
        raise NotFound(missing)
    allow(session, who, row.space_id, need, missing)
    return row


def run_of(session: Session, who: Principal, run_id: int, need: Need = Need.READ) -> m.Runtime:
    """Run `run_id`, if `who` meets `need` in its space (runs without a space: site admins)."""
    return object_of(session, who, m.Runtime, run_id, "run", need)


def service_of(session: Session, who: Principal, service_id: int, need: Need = Need.READ) -> m.Service:
    """Service `service_id`, if `who` meets `need` in its space."""
    return object_of(session, who, m.Service, service_id, "service", need)


def exam_of(session: Session, who: Principal, exam_id: int, need: Need = Need.READ) -> m.Exam:
    """Exam `exam_id`, if `who` meets `need` in its space."""
    return object_of(session, who, m.Exam, exam_id, "exam", need)


def exam_run_of(session: Session, who: Principal, exam_run_id: int, need: Need = Need.READ) -> m.ExamRun:
    """Exam run `exam_run_id`, if `who` meets `need` in its space."""
    return object_of(session, who, m.ExamRun, exam_run_id, "exam run", need)
