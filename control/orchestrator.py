"""The orchestrator: turns API calls into store transactions plus dispatch, and deploys models.

Store work runs in a worker thread (`db`), one transaction per call; adapters are awaited
outside any transaction, so a slow process start never holds a database lock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from control import attempts, audit, launch, prepare, quota, retries, runs
from control import schemas as s
from control.access import Principal
from control.deploy import Deployments
from control.dispatch import Adapter, planner
from control.dispatch.base import Admission
from control.dispatch.describe import describe_run, needs_ray
from control.dispatch.ray import RayAdapter
from control.errors import Conflict, ControlError, InvalidSpec
from control.pipeline import artifacts, binding, cache
from control.pipeline.engine import ExamEngine
from control.prepare import Prepared, ReadyRun
from control.schemas.pipeline import FailureClass
from control.secrets import Vault
from control.settings import Settings
from control.store import models as m
from control.store import repo, run_views
from control.store.engine import Store

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Orchestrator(Deployments):
    def __init__(self, settings: Settings, store: Store, vault: Vault, adapters: dict[str, Adapter]) -> None:
        self.settings = settings
        self.store = store
        self.vault = vault
        self.adapters = adapters
        self._background: set[asyncio.Task[Any]] = set()
        self.dispatching: set[int] = set()
        """Runs whose dispatch is under way in this process (a Ray head may be starting for them)."""
        self.exams = ExamEngine(self)

    # -- plumbing ---------------------------------------------------------------------------

    async def db(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in one transaction on a worker thread."""

        def work() -> T:
            with self.store.transaction() as session:
                return fn(session)

        return await asyncio.to_thread(work)

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self) -> None:
        """Cancel background work and close the adapters (control's own Ray head stops here)."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for adapter in self.adapters.values():
            try:
                await adapter.aclose()
            except Exception:  # one adapter's trouble must not keep the others open
                logger.exception("closing the %s adapter failed", adapter.name)

    def adapter(self, name: str) -> Adapter:
        try:
            return self.adapters[name]
        except KeyError:
            have = ", ".join(sorted(self.adapters)) or "none"
            raise ControlError(
                f"dispatch adapter {name!r} is not configured in this control (configured: {have}): "
                "configure it (ATOM_DISPATCH_ADAPTERS and its ATOM_* settings) and re-run"
            ) from None

    def place_run(self, session: Session, spec: s.TaskSpec) -> str:
        """The adapter for a run of `spec` (the planner; refuses an unconfigured pattern)."""
        space = session.get(m.Space, spec.space_id) if spec.space_id is not None else None
        return planner.place(
            self.settings, space=space.space_name if space else "default", spec=spec, available=self.adapters
        ).adapter

    def ray_wait(self) -> str | None:
        """What a run that trains on the shared Ray cluster waits for (its local head to start)."""
        ray = self.adapters.get("ray")
        return ray.head_wait() if isinstance(ray, RayAdapter) else None

    async def ray_address(self) -> str | None:
        """The shared Ray cluster's address (control's local head is started on the first call)."""
        ray = self.adapters.get("ray")
        if not isinstance(ray, RayAdapter):
            return None
        address, _ = await ray.ensure()
        return address

    # -- runs -------------------------------------------------------------------------------

    async def start_node(self, event: s.TaskEvent, who: Principal | None = None) -> list[int]:
        """startNodeTask: create the run(s) and dispatch those not waiting for upstream runs.

        An exam's waiting runs are dispatched later by the reconcile loop. When a dispatch fails
        (the run is then failed), the others are still dispatched before the error is raised.
        """

        def create(ses: Session) -> list[tuple[m.Runtime, str | None]]:
            made = launch.start_task(session=ses, event=event, adapter=self.place_run)
            for run, _ in made:
                if who is not None:
                    audit.record(ses, who, "start", "run", run.id, space_id=run.space_id, node=run.node_name)
            return made

        created = await self.db(create)
        failure: ControlError | None = None
        for run, token in created:
            if token is None:
                continue
            try:
                await self.dispatch(run.id, token)
            except ControlError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return [run.id for run, _ in created]

    async def create_operators(
        self, payload: s.CreateOperatorsPayload, who: Principal | None = None
    ) -> list[int]:
        """Run a training operator from a full seed payload: no node, no stored relation."""
        spec = payload.task_spec(self.vault.encrypt)

        def create(ses: Session) -> tuple[m.Runtime, str]:
            space_id = payload.operator_to.space_id
            if space_id is None or ses.get(m.Space, space_id) is None:
                space_id = repo.ensure_space(session=ses, name="default")[0].id
            if spec.model is not None:  # versions need a model record to hang on
                model = ses.scalar(
                    select(m.Model).where(
                        m.Model.space_id == space_id, m.Model.model_name == spec.model.model_name
                    )
                )
                if model is None:
                    model = m.Model(
                        space_id=space_id,
                        model_name=spec.model.model_name,
                        model_create_type=s.ModelCreateType.TRAIN.value,
                    )
                    ses.add(model)
                    ses.flush()
                spec.model.model_id = model.id
            spec.space_id = space_id
            made = launch.new_runtime(
                session=ses,
                spec=spec,
                space_id=space_id,
                node_id=None,
                adapter=self.place_run,
                reason="create_operators",
            )
            if who is not None:
                audit.record(ses, who, "start", "run", made[0].id, space_id=space_id, via="create_operators")
            return made

        run, token = await self.db(create)
        await self.dispatch(run.id, token)
        return [run.id]

    async def _prepare(self, run_id: int, *, check_cache: bool) -> Prepared:
        try:
            return await self.db(
                lambda ses: prepare.prepare(ses, run_id, self.settings, check_cache=check_cache)
            )
        except InvalidSpec as exc:  # the node can no longer be built: the run never starts
            why = str(exc)
            await self.db(lambda ses: binding.refuse(ses, run_id, why))
            self.exams.kick()
            raise

    def prepare_claimed(self, ses: Session, claimed: list[tuple[int, str]]) -> list[ReadyRun]:
        """`prepare.prepare_claimed` with this control's settings."""
        return prepare.prepare_claimed(ses, claimed, self.settings)

    async def dispatch(self, run_id: int, token: str, prepared: Prepared | None = None) -> None:
        """Describe the run, let its adapter admit it, then start it (or leave it waiting for resources).

        A run the adapter can never place, or that fails to start, is failed with the reason.
        `prepared`: the run as `prepare_claimed` left it (else it is prepared here).
        """
        self.dispatching.add(run_id)
        try:
            await self._dispatch(run_id, token, prepared)
        finally:
            self.dispatching.discard(run_id)

    async def _dispatch(self, run_id: int, token: str, prepared: Prepared | None) -> None:
        prep = prepared or await self._prepare(run_id, check_cache=True)
        if prep.cacheable:  # the cache decides before any quota is taken
            if await cache.serve_from_cache(self, run_id):
                self.exams.kick()
                return
            prep = await self._prepare(run_id, check_cache=False)
        run, spec, names = prep.run, prep.spec, prep.names
        if prep.over_quota:  # waits, holding nothing; the reconcile loop tries again
            logger.info("run %s waits: %s", run_id, prep.over_quota)
            return
        quota.crash_point("quota.after_try")
        try:
            adapter = self.adapter(run.adapter)  # one dropped from the settings since: the run fails
            desc = describe_run(self.settings, spec, token=token, names=names)
            admission = await adapter.admit(desc)  # refuses what this target can never hold
            ray_wait = self.ray_wait() if run.adapter != "ray" and needs_ray(spec) else None
            if ray_wait and not admission.wait:  # its workers need the shared head, not up yet
                await adapter.cancel(desc)
                admission = Admission(wait=ray_wait)
            if admission.wait:
                await self.db(lambda ses: prepare.wait(ses, run_id, admission.wait))
                logger.info("run %s waits: %s", run_id, admission.wait)
                return
            try:
                if run.adapter != "ray" and needs_ray(spec):  # its workers train on the shared cluster
                    address = await self.ray_address()
                    if address:
                        desc = dataclasses.replace(desc, env={**desc.env, "RAY_ADDRESS": address})
                external_id = await adapter.start(desc, admission)
            except BaseException:
                await adapter.cancel(desc)
                raise
            quota.crash_point("quota.after_start")
        except ControlError as exc:
            reason = str(exc)
            failure = FailureClass.SPEC if isinstance(exc, InvalidSpec) else FailureClass.INFRA

            def fail(ses: Session) -> bool:
                r = runs.get_run(session=ses, run_id=run_id)
                return retries.fail_run(
                    session=ses, run=r, reason=reason, failure=failure, settings=self.settings
                )

            if await self.db(fail):
                logger.warning("run %s could not be started, retrying later: %s", run_id, reason)
                return
            self.exams.kick()  # its downstream runs are decided now
            raise
        info = {
            "command": desc.command,
            "resources": desc.resources.as_dict(),
            "workers": desc.plan.workers if desc.plan else 1,
            "granted": admission.grant,
        }

        def dispatched(ses: Session) -> None:
            r = runs.get_run(session=ses, run_id=run_id)
            sched = runs.schedule_of(session=ses, run_id=run_id)
            waited = (sched.info or {}) if sched is not None else {}
            runs.record_schedule(session=ses, run_id=run_id, external_id=external_id, info=info, sched=sched)
            quota.confirm(ses, run_id)
            why = f"started by {adapter.name} adapter as {external_id}"
            if r.state == s.RunState.QUEUED.value:
                runs.transition(session=ses, run=r, to=s.RunState.PENDING, reason=why)
            elif r.state == s.RunState.PENDING.value and waited.get("waiting"):
                runs.note(session=ses, run=r, reason=why)
            attempts.open_attempt(ses, r, adapter=adapter.name, external_id=external_id)

        await self.db(dispatched)

    async def stop_run(self, run_id: int, reason: str, who: Principal | None = None) -> s.RunOut:
        def stop(ses: Session) -> tuple[s.RunOut, str | None, str]:
            run = runs.get_run(session=ses, run_id=run_id)
            if s.RunState(run.state).is_terminal():
                raise Conflict(f"run {run_id} already ended as {run.state}")
            if who is not None:
                audit.record(ses, who, "stop", "run", run_id, space_id=run.space_id, reason=reason)
            run.stop_requested = True
            runs.transition(session=ses, run=run, to=s.RunState.STOPPED, reason=reason)
            sched = runs.schedule_of(session=ses, run_id=run_id)
            return (
                run_views.view(session=ses, run=run, history=True),
                sched.external_id if sched else None,
                run.adapter,
            )

        out, external_id, adapter = await self.db(stop)
        self.exams.kick()
        if external_id:
            self.spawn(self.adapter(adapter).stop(external_id))
        return out

    async def finish(self, event: s.TaskEvent) -> s.FinishResult:
        """runningAutoFinish: mark the run succeeded and deploy by the operator's deployType, once."""

        def finish(ses: Session) -> tuple[s.FinishResult, int | None]:
            run = runs.run_for_finish(session=ses, event=event)
            state = s.RunState(run.state)
            if state.is_terminal() and state != s.RunState.SUCCEEDED:
                raise Conflict(f"run {run.id} already ended as {run.state}: it cannot be finished")
            if state != s.RunState.SUCCEEDED:  # a repeated finish records its outputs once
                runs.transition(session=ses, run=run, to=s.RunState.SUCCEEDED, reason="runningAutoFinish")
                artifacts.record_outputs(session=ses, run=run)
            existing = ses.scalar(select(m.Service).where(m.Service.runtime_id == run.id))
            if existing is not None:
                return s.FinishResult(
                    run_id=run.id,
                    state=s.RunState.SUCCEEDED,
                    service_id=existing.id,
                    msg=f"already finished; service {existing.service_name} exists",
                ), None
            before = run.reason
            service = self._plan_service(ses, run)
            if service is None:
                msg = f"finished; {run.reason}" if run.reason != before else "finished"
                return s.FinishResult(run_id=run.id, state=s.RunState.SUCCEEDED, msg=msg), None
            start = service.id if service.state == s.ServiceState.STARTING.value else None
            return s.FinishResult(
                run_id=run.id,
                state=s.RunState.SUCCEEDED,
                service_id=service.id,
                msg=f"finished; service {service.service_name} {service.state}",
            ), start

        try:
            result, to_start = await self.db(finish)
        except IntegrityError:  # a concurrent finish created the service first
            result, to_start = await self.db(finish)
        self.exams.kick()
        if to_start is not None:
            await self.start_service(to_start)
        return result
