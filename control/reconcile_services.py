"""The reconcile loop's watch over services: start the never-started, mark the ready, restart the
ready ones whose process ended (up to `ATOM_SERVICE_RESTARTS` times), fail the dead."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from control import schemas as s
from control.errors import ControlError
from control.grey_steps import step_grey_releases
from control.orchestrator import Orchestrator
from control.store import models as m
from control.store.models import utcnow

logger = logging.getLogger(__name__)

UNSTARTED_SERVICE_AFTER = 15.0
"""Seconds a service may stay `starting` without a process before reconcile starts it itself."""


def log_tail(path: str, lines: int = 3) -> str:
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    tail = [ln.strip() for ln in text[-lines:] if ln.strip()]
    return (": " + " | ".join(tail))[:400] if tail else ""


class ServiceWatch:
    """Services in `starting` or `ready`, held true to what their adapter and endpoint say."""

    orch: Orchestrator
    _http: httpx.AsyncClient

    async def _services(self) -> None:
        def load(ses: Session) -> list[tuple[int, str, str | None, str | None, str, float, str]]:
            now = utcnow()
            rows = ses.scalars(
                select(m.Service).where(
                    m.Service.state.in_([s.ServiceState.STARTING.value, s.ServiceState.READY.value])
                )
            )
            return [
                (
                    r.id,
                    r.state,
                    r.external_id,
                    r.endpoint,
                    r.adapter,
                    (now - r.updated_at).total_seconds(),
                    r.log_path,
                )
                for r in rows
            ]

        for sid, state, external_id, endpoint, adapter, age, log in await self.orch.db(load):
            if external_id is None:
                if state == s.ServiceState.STARTING.value and age > UNSTARTED_SERVICE_AFTER:
                    # recorded as starting, never started: control stopped in between
                    logger.warning("service %s was never started; starting it now", sid)
                    try:
                        await self.orch.start_service(sid)
                    except ControlError as exc:
                        logger.warning("service %s could not be started: %s", sid, exc)
                continue
            observed = await self.orch.adapter(adapter).describe(external_id)
            if not observed.alive:
                why = observed.detail.replace("agent", "service") + log_tail(log)
                if state == s.ServiceState.READY.value and await self._restart(sid, external_id, why):
                    continue
                await self._set_service(sid, s.ServiceState.FAILED, why)
                await self.orch.sync_front_of(sid)  # out of its model's split
                continue
            if state == s.ServiceState.STARTING.value:
                ready, load_error = await self._ready(endpoint)
                if ready:
                    await self._set_service(sid, s.ServiceState.READY, "")
                    await self.orch.settle_ready(sid)
                elif load_error:  # it answers, and says the model will never load
                    await self.orch.adapter(adapter).stop(external_id, grace=5)
                    await self._set_service(
                        sid, s.ServiceState.FAILED, f"the model failed to load: {load_error}"
                    )
                elif age > self.orch.settings.service_ready_timeout:
                    await self.orch.adapter(adapter).stop(external_id, grace=5)
                    await self._set_service(
                        sid,
                        s.ServiceState.FAILED,
                        f"not ready after {int(age)} s" + log_tail(log),
                    )

    async def _restart(self, service_id: int, external_id: str, why: str) -> bool:
        """Start a ready service whose process ended again, if its restarts are not used up.

        Returns False (the caller fails it) when it has been restarted `service_restarts` times
        already; the reason then says so. A service stopped meanwhile is left alone (True).
        """
        limit = self.orch.settings.service_restarts

        def count(ses: Session) -> int | None:
            svc = ses.get(m.Service, service_id)
            if svc is None or svc.state != s.ServiceState.READY.value or svc.external_id != external_id:
                return None  # stopped, failed or restarted by someone else meanwhile
            if svc.restarts >= limit:
                svc.reason = f"gave up after {svc.restarts} restarts: {why}"
                return -1
            svc.restarts += 1
            svc.state = s.ServiceState.STARTING.value
            svc.reason = f"restarted ({svc.restarts} of {limit}) after its process ended: {why}"[:1000]
            return svc.restarts

        done = await self.orch.db(count)
        if done is None:
            return True
        if done < 0:
            return False
        logger.warning("service %s: process ended (%s); restart %d of %d", service_id, why, done, limit)
        await self.orch.sync_front_of(service_id)  # out of its model's split until ready again
        try:
            await self.orch.start_service(service_id, keep_reason=True)
        except ControlError as exc:
            logger.warning("service %s could not be restarted: %s", service_id, exc)
        return True

    async def _grey_steps(self) -> None:
        """Grey releases with greySteps step on (or roll back) by their front's figures."""
        try:
            await step_grey_releases(self.orch)
        except ControlError as exc:
            logger.warning("grey releases: %s", exc)

    async def _fronts(self) -> None:
        """Fronts whose process ended are started again on their port (with their table)."""

        def load(ses: Session) -> list[tuple[int | None, int, str | None, str]]:
            rows = ses.scalars(select(m.ServiceFront).where(m.ServiceFront.state.in_(("ready", "failed"))))
            return [(r.space_id, r.model_id, r.external_id, r.adapter) for r in rows]

        for space_id, model_id, external_id, adapter in await self.orch.db(load):
            if external_id and (await self.orch.adapter(adapter).describe(external_id)).alive:
                continue
            logger.warning("the front of model %s is not running: starting it again", model_id)
            await self.orch.sync_front(space_id, model_id)

    async def _ready(self, endpoint: str | None) -> tuple[bool, str]:
        """(ready, why its model cannot load) from the service's `/v2/health/ready`."""
        if not endpoint:
            return False, ""
        try:
            resp = await self._http.get(f"{endpoint}/v2/health/ready")
        except httpx.HTTPError:
            return False, ""
        if resp.status_code == 200:
            return True, ""
        try:
            error = str(resp.json().get("error") or "")
        except ValueError:
            error = ""
        return False, "" if error in ("", "model is loading") else error[:500]

    async def _set_service(self, service_id: int, state: s.ServiceState, reason: str) -> None:
        def update(ses: Session) -> None:
            svc = ses.get(m.Service, service_id)
            if svc is not None and svc.state != s.ServiceState.STOPPED.value:
                svc.state = state.value
                svc.reason = reason

        await self.orch.db(update)
