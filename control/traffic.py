"""How a model's requests are split between the versions it serves: weights, promote, rollback, mirror.

The services of one model in one space are its versions behind one name. Each ready one has a
`traffic_weight` (0-100) and the ready ones' weights sum to 100; one of them may be a mirror
candidate (`mirror_percent`: that share of the requests is copied to it, and only the primary's
answer is returned). These functions change the rows in the caller's transaction and refuse,
changing nothing, what would leave a split that does not add up.

- `split(session, svc, weight)`: `svc` gets `weight`, the other ready versions share the rest in
  their current proportions (GREY_DEPLOY calls it when the new version is ready).
- `promote(session, svc)`: `svc` takes 100%, the others 0 (they are then stopped by the caller).
- `rollback(session, svc)`: `svc` goes to 0 and the newest other ready version takes its share.
- `mirror(session, svc, percent)`: copy `percent`% of the requests to `svc` (0 turns it off).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from control import schemas as s
from control.errors import Conflict, InvalidSpec
from control.store import models as m
from control.store.models import utcnow

READY = s.ServiceState.READY.value


def set_weight(svc: m.Service, weight: int) -> None:
    """Give `svc` `weight`%, noting when its weight changed (`weight_since`)."""
    if svc.traffic_weight != weight or svc.weight_since is None:
        svc.weight_since = utcnow()
    svc.traffic_weight = weight


def versions(session: Session, svc: m.Service) -> list[m.Service]:
    """The ready services of `svc`'s model in its space (`svc` itself included), oldest first."""
    return list(
        session.scalars(
            select(m.Service)
            .where(
                m.Service.model_id == svc.model_id,
                m.Service.space_id == svc.space_id,
                m.Service.state == READY,
            )
            .order_by(m.Service.id)
        )
    )


def _check_weight(weight: int) -> None:
    if not 0 <= weight <= 100:
        raise InvalidSpec(f"trafficWeight is {weight}: a weight is a percentage from 0 to 100")


def _ready(svc: m.Service, doing: str) -> None:
    if svc.state != READY:
        raise Conflict(f"service {svc.service_name} is {svc.state}: only a ready version can be {doing}")


def split(session: Session, svc: m.Service, weight: int) -> list[m.Service]:
    """Give `svc` `weight`% and the other ready versions the rest, in their current proportions
    (equally when they all have 0). Returns the versions with their new weights."""
    _check_weight(weight)
    _ready(svc, "given traffic")
    group = versions(session, svc)
    others = [v for v in group if v.id != svc.id]
    if not others:
        if weight != 100:
            raise Conflict(
                f"service {svc.service_name} is the only ready version of its model: "
                f"it takes 100%, not {weight}%"
            )
        set_weight(svc, 100)
        return group
    rest = 100 - weight
    total = sum(v.traffic_weight for v in others)
    shares = [v.traffic_weight / total if total else 1 / len(others) for v in others]
    given = [int(rest * share) for share in shares]
    for i in sorted(range(len(others)), key=lambda i: -(rest * shares[i] - given[i]))[: rest - sum(given)]:
        given[i] += 1  # largest remainders: the weights add up to exactly 100
    for version, share in zip(others, given, strict=True):
        set_weight(version, share)
    set_weight(svc, weight)
    if svc.mirror_percent and weight == 100:
        svc.mirror_percent = 0  # a version that takes every request mirrors to nobody
    session.flush()
    return group


def promote(session: Session, svc: m.Service) -> list[m.Service]:
    """`svc` takes every request; returns the other versions (now at 0%) for the caller to stop."""
    _ready(svc, "promoted")
    group = split(session, svc, 100)
    for version in group:
        version.mirror_percent = 0
    return [v for v in group if v.id != svc.id]


def rollback(session: Session, svc: m.Service) -> m.Service:
    """`svc` goes to 0% and the newest other ready version takes its share; returns that version.

    Raises:
        Conflict: no other ready version to roll back to.
    """
    group = versions(session, svc)
    previous = [v for v in group if v.id != svc.id]
    if not previous:
        raise Conflict(f"service {svc.service_name} has no other ready version of its model to roll back to")
    back = max(previous, key=lambda v: v.id)
    set_weight(back, back.traffic_weight + svc.traffic_weight)
    set_weight(svc, 0)
    svc.mirror_percent = 0
    session.flush()
    return back


def mirror(session: Session, svc: m.Service, percent: int) -> None:
    """Copy `percent`% of the model's requests to `svc` (a candidate); 0 stops mirroring.

    Raises:
        InvalidSpec: `percent` outside 0-100.
        Conflict: `svc` is not ready, takes every request itself, or another version is the candidate.
    """
    if not 0 <= percent <= 100:
        raise InvalidSpec(f"mirrorPercent is {percent}: a share is a percentage from 0 to 100")
    if percent == 0:
        svc.mirror_percent = 0
        return
    _ready(svc, "a mirror candidate")
    if svc.traffic_weight == 100:
        raise Conflict(
            f"service {svc.service_name} takes every request itself: mirror to a candidate version "
            "beside the one serving"
        )
    for other in versions(session, svc):
        if other.id != svc.id and other.mirror_percent:
            raise Conflict(
                f"service {other.service_name} is already the mirror candidate: set its mirror to 0 first"
            )
    svc.mirror_percent = percent
    session.flush()
