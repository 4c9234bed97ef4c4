"""The reconcile loop: keeps every run's and service's state true to what its adapter reports.

Each pass observes, then proposes: a dead agent process, a missed heartbeat, a dispatch
that never completed, a service that became ready or died. It also moves exam launches on:
a queued run whose upstream runs all succeeded is dispatched, one whose upstream run failed
or was stopped is stopped. Runs survive a control restart: the first pass picks up every
non-terminal run (and every waiting exam run) from the store.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from control import quota, retries, runs
from control import schemas as s
from control.errors import ControlError
from control.orchestrator import Orchestrator
from control.pipeline import exam_runs
from control.pipeline.scheduler import Scheduler
from control.prepare import ReadyRun
from control.reconcile_services import ServiceWatch, log_tail
from control.run_logs import Retention
from control.secrets import new_token, token_hash
from control.store import models as m
from control.store.models import utcnow

logger = logging.getLogger(__name__)

FINAL_LOG_WAIT = 120.0
"""Seconds after a run ended that control waits for its target to end before the last log copy."""
ACTIVE = (s.RunState.QUEUED.value, s.RunState.PENDING.value, s.RunState.RUNNING.value)


@dataclass(frozen=True)
class Watched:
    run_id: int
    state: str
    adapter: str
    external_id: str | None
    age: float
    silent_for: float
    log_path: str
    contacted: bool = False
    """Its agent has called control (reported running, or sent a heartbeat)."""


def judge_waiting(*, session: Session) -> list[tuple[int, str]]:
    """Decide every queued exam run that waits for upstream runs (`control.pipeline.exam_runs.advance`).

    Returns:
        `(run id, run token)` of each claimed run: dispatch them.
    """
    return exam_runs.advance(session=session)


def claim_resource_waiters(*, session: Session) -> list[tuple[int, str]]:
    """Pending runs that wait for resources (not dispatched yet), oldest first, each with a fresh token."""
    out: list[tuple[int, str]] = []
    for run in session.scalars(
        select(m.Runtime).where(m.Runtime.state == s.RunState.PENDING.value).order_by(m.Runtime.id)
    ):
        sched = runs.schedule_of(session=session, run_id=run.id)
        if sched is None or sched.external_id is not None or not (sched.info or {}).get("waiting"):
            continue
        token = new_token()
        run.token_hash = token_hash(token)
        out.append((run.id, token))
    return out


class Reconciler(ServiceWatch):
    def __init__(self, orch: Orchestrator, *, interval: float, heartbeat_timeout: float) -> None:
        self.orch = orch
        self.interval = interval
        self.heartbeat_timeout = heartbeat_timeout
        self.started = time.monotonic()
        """When this control started: live agents get `heartbeat_timeout` seconds from here."""
        self._http = httpx.AsyncClient(timeout=2.0)
        self._adopted = False
        self.retention = Retention(runs_dir=orch.settings.runs_dir, days=orch.settings.log_retention_days)
        self.clock: Callable[[], datetime] = utcnow
        """The time retries are due by (`control.retries.claim_due`); tests set their own."""
        self.schedules = Scheduler(orch, clock=lambda: self.clock())
        """Fires due cron schedules and starts queued exam runs (`control.pipeline.scheduler`)."""

    async def run_forever(self) -> None:
        while True:
            try:
                await self.reconcile_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("reconcile pass failed; next pass in %.1fs", self.interval)
            await asyncio.sleep(self.interval)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def reconcile_once(self) -> None:
        if not self._adopted:
            await self._adopt()
        await self._schedules()
        await self._waiting()
        await self._runs()
        await self._quotas()  # a run it releases is dispatched again on the next pass
        await self._final_logs()
        await self._services()
        await self._fronts()
        await self._grey_steps()
        await self.retention.tick(self.orch.db)

    async def _schedules(self) -> None:
        try:
            await self.schedules.tick()
        except ControlError as exc:  # a schedule's trouble must not stop the pass for runs
            logger.warning("schedules: %s", exc)

    async def _adopt(self) -> None:
        """After a (re)start: hold again what live agents of an earlier control hold (GPUs, cores)."""

        def load(ses: Session) -> list[tuple[str, str, dict[str, Any]]]:
            out = []
            for run in ses.scalars(select(m.Runtime).where(m.Runtime.state.in_(ACTIVE))):
                sched = runs.schedule_of(session=ses, run_id=run.id)
                if sched is not None and sched.external_id and (sched.info or {}).get("granted"):
                    out.append((run.adapter, sched.external_id, dict(sched.info["granted"])))
            return out

        for adapter, external_id, grant in await self.orch.db(load):
            if adapter in self.orch.adapters:
                self.orch.adapters[adapter].adopt(external_id, grant)
        self._adopted = True

    async def _final_logs(self) -> None:
        """One last copy of a remote target's log for runs that ended, once their target has ended
        too (a stopped pod's last lines come after the run reads as stopped), or after
        `FINAL_LOG_WAIT` seconds when it never says so."""

        def load(ses: Session) -> list[tuple[Watched, float]]:
            now = utcnow()
            out = []
            for run in ses.scalars(
                select(m.Runtime).where(
                    m.Runtime.state.not_in(ACTIVE),
                    m.Runtime.adapter != "local",
                    m.Runtime.finished_at >= now - timedelta(hours=1),
                )
            ):
                sched = runs.schedule_of(session=ses, run_id=run.id)
                if sched is None or not sched.external_id or (sched.info or {}).get("logsFinal"):
                    continue
                ended = (now - run.finished_at).total_seconds() if run.finished_at else FINAL_LOG_WAIT
                w = Watched(run.id, run.state, run.adapter, sched.external_id, 0, 0, run.log_path)
                out.append((w, ended))
            return out

        def mark(ses: Session, *, run_id: int) -> bool:
            sched = runs.schedule_of(session=ses, run_id=run_id)
            if sched is None or (sched.info or {}).get("logsFinal"):
                return False
            sched.info = {**(sched.info or {}), "logsFinal": True}
            return True

        for w, ended_for in await self.orch.db(load):
            try:
                adapter = self.orch.adapter(w.adapter)
                if ended_for < FINAL_LOG_WAIT and not await adapter.settled(w.external_id or ""):
                    await self._sync_log(w)  # what it has so far; the last copy comes later
                    continue
                if not await self.orch.db(functools.partial(mark, run_id=w.run_id)):
                    continue
                await self._sync_log(w)
                await adapter.release(w.external_id or "")
            except ControlError as exc:
                logger.warning("run %s: its final log was not copied: %s", w.run_id, exc)

    # -- quota reservations -----------------------------------------------------------------

    async def _quotas(self) -> None:
        """Settle reservations a crash left between try, confirm and cancel (`control.quota.settle`);
        TRYING ones once agents of an earlier control have had `heartbeat_timeout` s to call."""
        busy, timeout = set(self.orch.dispatching), self.heartbeat_timeout
        tries = time.monotonic() - self.started >= timeout
        note = await self.orch.db(lambda ses: quota.settle(ses, tries=tries, older_than=timeout, busy=busy))
        if note:
            logger.warning("quota: %s", note)

    # -- exam launches ----------------------------------------------------------------------

    async def _waiting(self) -> None:
        await self.orch.exams.advance()  # claims, skips and dispatches waiting exam runs
        now, runs_dir, prepare = self.clock(), self.orch.settings.runs_dir, self.orch.prepare_claimed

        def due(ses: Session) -> list[ReadyRun]:
            claimed = retries.claim_due(session=ses, now=now, runs_dir=runs_dir)
            return prepare(ses, [(c.run_id, c.token) for c in claimed])

        ready = await self.orch.db(due)
        ready += await self.orch.db(lambda ses: prepare(ses, claim_resource_waiters(session=ses)))
        await self.orch.exams.dispatch(ready)

    # -- runs -------------------------------------------------------------------------------

    async def _runs(self) -> None:
        def load(ses: Session) -> list[Watched]:
            now = utcnow()
            out = []
            # a queued run that waits for its upstream runs (the exam engine) or backs off before
            # its next attempt (`retries.claim_due`) has nothing to watch yet
            queued_on_purpose = (m.Runtime.state == s.RunState.QUEUED.value) & (
                exam_runs.has_upstream() | m.Runtime.retry_at.is_not(None)
            )
            for run in ses.scalars(select(m.Runtime).where(m.Runtime.state.in_(ACTIVE), ~queued_on_purpose)):
                sched = runs.schedule_of(session=ses, run_id=run.id)
                if sched is not None and sched.external_id is None and (sched.info or {}).get("waiting"):
                    continue  # waits for resources (`claim_resource_waiters`)
                held = quota.reservation_of(ses, run.id)
                if (
                    held is not None
                    and held.state == quota.TRYING
                    and (sched is None or not sched.external_id)
                ):
                    continue  # its dispatch is under way, or `_quotas` settles it
                # silence counts from the last heartbeat, else from the dispatch (an exam run may
                # be dispatched long after it was created), else from creation
                since = run.heartbeat_at or (sched.last_sync_at if sched else None) or run.created_at
                out.append(
                    Watched(
                        run_id=run.id,
                        state=run.state,
                        adapter=run.adapter,
                        external_id=sched.external_id if sched else None,
                        age=(now - run.created_at).total_seconds(),
                        silent_for=(now - since).total_seconds(),
                        log_path=run.log_path,
                        contacted=run.heartbeat_at is not None,
                    )
                )
            return out

        for w in await self.orch.db(load):
            try:
                reason = await self._judge_run(w)
                if reason is not None:
                    await self._fail_run(w, reason)
            except ControlError as exc:  # one run's trouble must not stop the pass for the others
                logger.warning("run %s: reconcile skipped it: %s", w.run_id, exc)

    async def _judge_run(self, w: Watched) -> str | None:
        if w.external_id is None:
            if w.run_id in self.orch.dispatching:
                return None  # being started right now (a Ray head can take a while to come up)
            if w.contacted:  # started, but control stopped before it stored the start: judge its calls
                return self._silence(w)
            if w.age > self.heartbeat_timeout:
                return "the run was never dispatched (control stopped while starting it)"
            return None
        adapter = self.orch.adapter(w.adapter)
        observed = await adapter.describe(w.external_id)
        await self._sync_log(w)
        if observed.waiting and w.state == s.RunState.PENDING.value:
            await self.orch.db(lambda ses: _set_reason(ses, w.run_id, observed.waiting))
            return None
        # after a restart, agents started by the earlier control get a grace period to reach us
        grace = time.monotonic() - self.started < self.heartbeat_timeout
        if not observed.alive:
            unsure = observed.exit_code is None and not observed.certain
            if grace and unsure and not w.external_id.startswith("pid:"):
                return None  # the adapter cannot see it yet; its agent may still report
            await adapter.release(w.external_id)
            if observed.exit_code == 0:
                return "the agent exited without reporting a result" + log_tail(w.log_path)
            return observed.detail + log_tail(w.log_path)
        silence = self._silence(w)
        if silence:
            await self.orch.adapter(w.adapter).stop(w.external_id, grace=5)
        return silence

    def _silence(self, w: Watched) -> str | None:
        """Why a live agent counts as lost: silent past `heartbeat_timeout` once it has called,
        past `agent_start_timeout` (when longer) before its first call."""
        silent = min(w.silent_for, time.monotonic() - self.started)
        limit = self.heartbeat_timeout
        if not w.contacted:
            limit = max(limit, self.orch.settings.agent_start_timeout)
        if silent > limit:
            what = "no heartbeat from the agent" if w.contacted else "no call from the agent since its start"
            return f"{what} for {int(silent)} s (limit {int(limit)} s)"
        return None

    async def _sync_log(self, w: Watched) -> None:
        """Copy what a remote target collected of the agent's output into the run's log file."""
        if w.external_id is None or not w.log_path:
            return
        text = await self.orch.adapter(w.adapter).logs(w.external_id)
        if text is None:
            return
        path = Path(w.log_path)
        data = text.encode("utf-8", "replace")

        def write() -> None:
            if not path.exists() or path.stat().st_size != len(data):
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(data)
                tmp.replace(path)

        await asyncio.to_thread(write)

    async def _fail_run(self, w: Watched, reason: str) -> None:
        def fail(ses: Session) -> None:
            run = runs.get_run(session=ses, run_id=w.run_id)
            if run.state not in ACTIVE:  # the agent may have finished while we looked
                return
            if run.state == s.RunState.QUEUED.value:
                # a queued run never started, so it cannot fail (seed 002): it is stopped instead
                runs.transition(session=ses, run=run, to=s.RunState.STOPPED, reason=reason)
                return
            failure = retries.observed_class(reason)
            settings = self.orch.settings
            retries.fail_run(session=ses, run=run, reason=reason, failure=failure, settings=settings)

        logger.warning("run %s failed: %s", w.run_id, reason)
        await self.orch.db(fail)
        self.orch.exams.kick()


def _set_reason(ses: Session, run_id: int, reason: str) -> None:
    """A dispatched run its target says waits (a pod pulling its image): keep the reason, and count
    its agent's silence from now, not from the dispatch."""
    run = runs.get_run(session=ses, run_id=run_id)
    if run.state == s.RunState.PENDING.value and run.reason != reason:
        run.reason = reason
    sched = runs.schedule_of(session=ses, run_id=run_id)
    if sched is not None and run.state == s.RunState.PENDING.value and run.heartbeat_at is None:
        sched.last_sync_at = m.utcnow()
