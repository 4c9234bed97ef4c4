"""A grey release that steps itself: the new version's share goes up while it behaves, back when not.

A GREY_DEPLOY version whose operator's modelConf has `greySteps` (e.g. `[10, 50, 100]`) starts at
the first step. On each reconcile pass, once it has held its share for `greyStepSeconds` (default
60) and answered at least `greyMinRequests` (default 20) requests through its model's front, the
front's figures for it decide:

- its error rate (5xx and connection failures over its requests) above `greyMaxErrorRate`
  (default 0.01), or its p99 latency above `greyMaxP99Ms` (when set): it is rolled back (weight 0,
  drained, stopped; the version before it takes its share);
- otherwise it steps up to the next share; the last step (100) promotes it (the others stop).

Every step and roll-back is an audit event (actor `control`, action `grey-step` or
`grey-rollback`) with the figures that decided it, and the version's reason says the latest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from control import audit
from control import schemas as s
from control.errors import InvalidSpec
from control.fronts import ADMIN, front_endpoint
from control.store import models as m
from control.store.models import utcnow

if TYPE_CHECKING:
    from collections.abc import Callable

    from control.orchestrator import Orchestrator

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GreyPlan:
    steps: tuple[int, ...]
    every_s: float = 60.0
    min_requests: int = 20
    max_error_rate: float = 0.01
    max_p99_ms: float | None = None


def plan_of(model_conf: dict[str, Any]) -> GreyPlan | None:
    """The stepping plan in a modelConf (None: the grey version's share is moved by hand).

    Raises:
        InvalidSpec: a step outside 1-100, steps not increasing, or a limit of the wrong kind.
    """
    steps = model_conf.get("greySteps")
    if steps in (None, [], ""):
        return None
    if not isinstance(steps, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in steps):
        raise InvalidSpec(f"modelConf.greySteps is {steps!r}: give increasing shares, e.g. [10, 50, 100]")
    if any(not 0 < x <= 100 for x in steps) or steps != sorted(set(steps)):
        raise InvalidSpec(f"modelConf.greySteps is {steps!r}: shares from 1 to 100, each above the last")
    try:
        plan = GreyPlan(
            steps=tuple(steps),
            every_s=float(model_conf.get("greyStepSeconds", 60)),
            min_requests=int(model_conf.get("greyMinRequests", 20)),
            max_error_rate=float(model_conf.get("greyMaxErrorRate", 0.01)),
            max_p99_ms=None if model_conf.get("greyMaxP99Ms") is None else float(model_conf["greyMaxP99Ms"]),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidSpec(f"modelConf grey step limits: {exc}: give numbers") from exc
    if plan.every_s < 0 or plan.min_requests < 0 or not 0 <= plan.max_error_rate <= 1:
        raise InvalidSpec(
            "modelConf grey step limits: greyStepSeconds and greyMinRequests >= 0, greyMaxErrorRate 0-1"
        )
    return plan


@dataclass(frozen=True)
class Candidate:
    service_id: int
    name: str
    space_id: int | None
    weight: int
    since: datetime | None
    front: str | None
    plan: GreyPlan


def _candidates(ses: Session) -> list[Candidate]:
    rows = ses.scalars(
        select(m.Service).where(
            m.Service.state == s.ServiceState.READY.value,
            m.Service.traffic_weight > 0,
            m.Service.traffic_weight < 100,
        )
    ).all()
    if not rows:
        return []  # nothing between 0 and 100%: no grey release under way
    newest: dict[tuple[int | None, int], int] = {}
    for svc in ses.scalars(select(m.Service).where(m.Service.state == s.ServiceState.READY.value)):
        key = (svc.space_id, svc.model_id)
        newest[key] = max(newest.get(key, 0), svc.id)
    out = []
    for svc in rows:
        if newest.get((svc.space_id, svc.model_id)) != svc.id:
            continue  # the version being released is the model's newest; older ones hold the rest
        run = ses.get(m.Runtime, svc.runtime_id) if svc.runtime_id else None
        operator = (run.spec.get("operator") or {}) if run is not None else {}
        if operator.get("deployType") != s.DeployType.GREY_DEPLOY.value:
            continue
        try:
            plan = plan_of(operator.get("modelConf") or {})
        except InvalidSpec as exc:
            logger.warning("service %s: %s", svc.service_name, exc)
            continue
        if plan is None:
            continue
        endpoint = front_endpoint(ses, svc)
        out.append(
            Candidate(
                svc.id, svc.service_name, svc.space_id, svc.traffic_weight, svc.weight_since, endpoint, plan
            )
        )
    return out


def _figures(stats: dict[str, Any], version: str) -> tuple[int, int, float | None]:
    """(requests, errors, p99 ms) of `version` in the front's stats."""
    for v in stats.get("versions") or []:
        if v.get("version") == version:
            p99 = v.get("p99Ms")
            latency = float(p99) if p99 is not None else None
            return int(v.get("requests") or 0), int(v.get("errors") or 0), latency
    return 0, 0, None


async def step_grey_releases(orch: Orchestrator, *, now: datetime | None = None) -> list[str]:
    """One pass over the stepping grey versions; returns what was done (for logs and tests)."""
    now = now or utcnow()
    done: list[str] = []
    for c in await orch.db(_candidates):
        if c.front is None or c.since is None or now - c.since < timedelta(seconds=c.plan.every_s):
            continue
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                stats = (await http.get(f"{c.front}{ADMIN}/stats")).json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("grey release of %s: the front did not answer (%s)", c.name, exc)
            continue
        requests, errors, p99 = _figures(stats, c.name)
        if requests < c.plan.min_requests:
            continue  # not enough evidence yet
        rate = errors / requests
        figures = f"{requests} requests, {rate:.1%} errors"
        figures += f", p99 {p99:.0f} ms" if p99 is not None else ""
        slow = c.plan.max_p99_ms is not None and p99 is not None and p99 > c.plan.max_p99_ms
        if rate > c.plan.max_error_rate or slow:
            limit = (
                f"error rate above {c.plan.max_error_rate:.1%}"
                if rate > c.plan.max_error_rate
                else f"p99 above {c.plan.max_p99_ms:.0f} ms"
            )
            why = f"grey release rolled back at {c.weight}%: {limit} ({figures})"
            await orch.rollback_service(c.service_id)
            await orch.db(_noting(c, "grey-rollback", why, 0))
            done.append(why)
            continue
        nxt = next((x for x in c.plan.steps if x > c.weight), 100)
        why = f"grey release stepped {c.weight}% -> {nxt}% ({figures})"
        if nxt >= 100:
            await orch.promote_service(c.service_id)
        else:
            await orch.set_weight(c.service_id, nxt)
        await orch.db(_noting(c, "grey-step", why, nxt))
        done.append(why)
    for line in done:
        logger.info("%s", line)
    return done


def _noting(c: Candidate, action: str, why: str, after: int) -> Callable[[Session], None]:
    return lambda ses: _note(ses, c, action, why, c.weight, after)


def _note(ses: Session, c: Candidate, action: str, why: str, before: int, after: int) -> None:
    svc = ses.get(m.Service, c.service_id)
    if svc is not None:
        svc.reason = why
    detail = {"before": before, "after": after, "why": why}
    audit.record(ses, "control", action, "service", c.name, space_id=c.space_id, **detail)
