"""Inference services of finished runs: plan one by deployType, start, stop and approve it.

`Deployments` is a part of the `Orchestrator` (it uses its store and adapters); it holds no state.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from control import audit, grey_steps, runs, traffic
from control import schemas as s
from control.dispatch.describe import describe_service
from control.dispatch.k8s_names import service_name
from control.errors import Conflict, ControlError, InvalidSpec, NotFound
from control.fronts import FRONTED, FrontOps
from control.pipeline import best_version
from control.secrets import new_token, token_hash
from control.service_keys import new_key, set_new_key
from control.store import models as m

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from control.access import Principal
    from control.dispatch import Adapter
    from control.settings import Settings

    T = TypeVar("T")

logger = logging.getLogger(__name__)
DEPLOYING = (s.DeployType.AUTO_DEPLOY.value, s.DeployType.GREY_DEPLOY.value, s.DeployType.TOUCH_DEPLOY.value)


#: adapters that run services themselves; a service of a run elsewhere (Ray) is a local process
SERVING_ADAPTERS = frozenset({"local", "docker", "kubernetes"})


def service_adapter(run_adapter: str) -> str:
    """Where a run's inference service runs: beside the run on containers and Kubernetes, else locally."""
    return run_adapter if run_adapter in SERVING_ADAPTERS else "local"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Deployments(FrontOps):
    """Service operations of the orchestrator."""

    settings: Settings

    async def db(self, fn: Callable[[Session], T]) -> T:  # provided by Orchestrator
        raise NotImplementedError

    def adapter(self, name: str) -> Adapter:  # provided by Orchestrator
        raise NotImplementedError

    def _plan_service(self, ses: Session, run: m.Runtime) -> m.Service | None:
        spec = s.TaskSpec.model_validate(run.spec)
        deploy = spec.operator.deploy_type.value
        if deploy not in DEPLOYING:
            return None
        version = best_version.deploy_candidate(ses, run)
        if version is None:
            logger.warning(
                "run %s finished with deployType %s but registered no model version", run.id, deploy
            )
            return None
        refused = best_version.gate(ses, run, version, spec.operator.model_conf)
        if refused is not None:
            runs.note(session=ses, run=run, reason=refused)
            return None
        serving = version.serving_object or spec.operator.model_conf.get("servingObject")
        if not serving:
            raise InvalidSpec(
                f"model {spec.model.model_name if spec.model else '?'} has no serving operator: set "
                "modelConf.servingObject ('module:Class') or the operator's serving_object"
            )
        model = ses.get(m.Model, version.model_id)
        assert model is not None
        service_type = spec.service_info.si_type if spec.service_info else ""
        name = service_name(service_type, model.model_name, version.model_version)  # seed 001's names
        others = ses.scalars(
            select(m.Service).where(
                m.Service.model_id == model.id, m.Service.state == s.ServiceState.READY.value
            )
        ).all()
        weight = 100
        if deploy == s.DeployType.GREY_DEPLOY.value and others:
            steps = grey_steps.plan_of(spec.operator.model_conf)  # refused here when malformed
            first = steps.steps[0] if steps is not None else 10
            weight = _grey_weight(spec.operator.model_conf.get("greyWeight", first))
        replicas = spec.service_info.si_node_num if spec.service_info else 1
        service = m.Service(
            space_id=run.space_id,
            service_name=s.check_dns1123(name),
            model_id=model.id,
            model_version_id=version.id,
            runtime_id=run.id,
            serving_object=serving,
            replicas=max(replicas, 1),
            traffic_weight=weight,
            state=(
                s.ServiceState.WAITING_APPROVAL.value
                if deploy == s.DeployType.TOUCH_DEPLOY.value
                else s.ServiceState.STARTING.value
            ),
            reason="waiting for a user to approve (TOUCH_DEPLOY)" if deploy == "TOUCH_DEPLOY" else "",
            adapter=service_adapter(run.adapter),
            token_hash="",
            # the key of an automatic deploy is shown to nobody: `atom services key NAME` makes one
            api_key_hash=token_hash(new_key()),
            public=_public(spec.operator.model_conf, default=not self.settings.service_auth),
        )
        ses.add(service)
        ses.flush()
        return service

    # -- services ---------------------------------------------------------------------------

    async def start_service(self, service_id: int, *, keep_reason: bool = False) -> None:
        """Start (or start again) the service's process on a new port with a new token;
        `keep_reason` keeps the reason already recorded (a restart says why it happened)."""
        token = new_token()
        port = free_port()

        def prepare(ses: Session) -> m.Service:
            svc = ses.get(m.Service, service_id)
            if svc is None:
                raise NotFound(f"service {service_id} does not exist")
            svc.token_hash = token_hash(token)
            svc.port = port
            svc.endpoint = f"http://127.0.0.1:{port}"
            svc.state = s.ServiceState.STARTING.value
            if not keep_reason:
                svc.reason = ""
            return svc

        svc = await self.db(prepare)
        context = await self.db(lambda ses: service_context(ses, svc))
        log = self.settings.services_dir / str(service_id) / "serve.log"
        launch = describe_service(
            self.settings,
            service_id=service_id,
            name=svc.service_name,
            token=token,
            port=port,
            log_path=log,
            **context,
        )
        try:
            external_id = await self.adapter(svc.adapter).start(launch)
        except ControlError as exc:
            reason = str(exc)
            await self.db(
                lambda ses: _set_service(ses, service_id, state=s.ServiceState.FAILED, reason=reason)
            )
            raise

        endpoint = self.adapter(svc.adapter).endpoint(launch, port)

        def started(ses: Session) -> None:
            row = ses.get(m.Service, service_id)
            assert row is not None
            row.external_id = external_id
            row.log_path = str(log)
            row.endpoint = endpoint

        await self.db(started)

    async def settle_ready(self, service_id: int) -> list[int]:
        """A service just became ready. GREY_DEPLOY: it gets its planned weight (greyWeight) and
        the model's other ready versions the rest. Otherwise it takes every request and the older
        live services of its model are drained and stopped, with "replaced by ..." as their
        reason. A version with a newer live one beside it (restarted after its process ended)
        keeps its weight. The model's front gets the new table. Returns the ids stopped."""

        def settle(ses: Session) -> tuple[list[int], str, tuple[int | None, int] | None]:
            svc = ses.get(m.Service, service_id)
            if svc is None or svc.state != s.ServiceState.READY.value:
                return [], "", None
            key = (svc.space_id, svc.model_id)
            live = (s.ServiceState.READY.value, s.ServiceState.STARTING.value)
            siblings = ses.scalars(
                select(m.Service).where(
                    m.Service.model_id == svc.model_id,
                    m.Service.space_id == svc.space_id,
                    m.Service.id != svc.id,
                    m.Service.state.in_(live),
                )
            ).all()
            if any(o.id > svc.id for o in siblings):
                return [], "", key  # an older version back after a restart: the split stands
            run = ses.get(m.Runtime, svc.runtime_id) if svc.runtime_id else None
            deploy = (run.spec.get("operator") or {}).get("deployType") if run is not None else None
            if deploy == s.DeployType.GREY_DEPLOY.value:
                alone = len(traffic.versions(ses, svc)) == 1
                traffic.split(ses, svc, 100 if alone else svc.traffic_weight)
                return [], "", key
            traffic.set_weight(svc, 100)
            for old in siblings:
                traffic.set_weight(old, 0)
                old.mirror_percent = 0
            version = ses.get(m.ModelVersion, svc.model_version_id)
            shown = version.model_version if version is not None else "?"
            return [o.id for o in siblings], f"replaced by {svc.service_name} (version {shown})", key

        ids, why, key = await self.db(settle)
        if key is not None:
            await self.sync_front(*key)
        for old in ids:
            logger.info("service %s %s", old, why)
            await self.stop_service(old, reason=why)
        return ids

    async def promote_service(self, service_id: int, *, who: Principal | None = None) -> list[int]:
        """The version takes every request; the model's other versions are drained and stopped.
        Returns their ids."""

        def move(ses: Session) -> tuple[list[int], str, tuple[int | None, int]]:
            svc = ses.get(m.Service, service_id)
            if svc is None:
                raise NotFound(f"service {service_id} does not exist")
            others = traffic.promote(ses, svc)
            if who is not None:
                audit.record(ses, who, "promote", "service", svc.service_name, space_id=svc.space_id)
            why = f"replaced by {svc.service_name} (promoted)"
            return [o.id for o in others], why, (svc.space_id, svc.model_id)

        ids, why, key = await self.db(move)
        await self.sync_front(*key)
        for old in ids:
            await self.stop_service(old, reason=why)
        return ids

    async def rollback_service(self, service_id: int, *, who: Principal | None = None) -> int:
        """The version goes to 0%, is drained and stopped; the newest other ready version takes
        its share. Returns that version's id."""

        def move(ses: Session) -> tuple[int, str, tuple[int | None, int]]:
            svc = ses.get(m.Service, service_id)
            if svc is None:
                raise NotFound(f"service {service_id} does not exist")
            back = traffic.rollback(ses, svc)
            if who is not None:
                audit.record(ses, who, "rollback", "service", svc.service_name, space_id=svc.space_id)
            return back.id, f"rolled back to {back.service_name}", (svc.space_id, svc.model_id)

        back, why, key = await self.db(move)
        await self.sync_front(*key)
        await self.stop_service(service_id, reason=why)
        return back

    async def stop_service(
        self, service_id: int, *, who: Principal | None = None, reason: str = "stopped by user"
    ) -> None:
        """Stop the service; `who` (a user) is recorded in the audit trail with the stop.

        A ready version behind its model's front is first given weight 0 (the other versions
        take its share) and stopped only when the front has no request to it in flight."""

        def unweight(ses: Session) -> tuple[int | None, int, str] | None:
            svc = ses.get(m.Service, service_id)
            if svc is None:
                raise NotFound(f"service {service_id} does not exist")
            if svc.state != s.ServiceState.READY.value or svc.adapter not in FRONTED:
                return None
            if svc.traffic_weight and len(traffic.versions(ses, svc)) > 1:
                traffic.split(ses, svc, 0)
            return svc.space_id, svc.model_id, svc.service_name

        fronted = await self.db(unweight)
        if fronted is not None:
            await self.sync_front(fronted[0], fronted[1])
            await self.drain(*fronted)

        def stop(ses: Session) -> tuple[str | None, str]:
            svc = ses.get(m.Service, service_id)
            if svc is None:
                raise NotFound(f"service {service_id} does not exist")
            svc.state = s.ServiceState.STOPPED.value
            svc.reason = reason
            if who is not None:
                audit.record(ses, who, "stop", "service", svc.service_name, space_id=svc.space_id, id=svc.id)
            return svc.external_id, svc.adapter

        external_id, adapter = await self.db(stop)
        if external_id:
            await self.adapter(adapter).stop(external_id, grace=5)
        if fronted is not None:
            await self.sync_front(fronted[0], fronted[1])

    async def sync_front_of(self, service_id: int) -> None:
        """`sync_front` for the model of service `service_id` (its state or weight changed)."""
        key = await self.db(lambda ses: _model_key(ses, service_id))
        if key is not None:
            await self.sync_front(*key)

    async def approve_service(self, service_id: int, *, who: Principal | None = None) -> str | None:
        """Start a waiting (or stopped) service; returns its new key when approval made one.

        A service waiting for approval gets its key here, shown once in the approving answer; a
        stopped one that starts again keeps its key. `who` is recorded in the audit trail.
        """

        def check(ses: Session) -> str | None:
            svc = ses.get(m.Service, service_id)
            if svc is None:
                raise NotFound(f"service {service_id} does not exist")
            if svc.state not in (s.ServiceState.WAITING_APPROVAL.value, s.ServiceState.STOPPED.value):
                raise Conflict(
                    f"service {svc.service_name} is {svc.state}; only a waiting or stopped one starts"
                )
            if who is not None:
                audit.record(
                    ses, who, "approve", "service", svc.service_name, space_id=svc.space_id, id=svc.id
                )
            if svc.state == s.ServiceState.WAITING_APPROVAL.value and not svc.public:
                return set_new_key(svc)
            return None

        key = await self.db(check)
        await self.start_service(service_id)
        return key


def service_context(ses: Session, svc: m.Service) -> dict[str, Any]:
    """What a service's description takes from the store: the training run's spec (resources,
    image, type, placement), its space, the version served and (min, max) replicas when the node's
    min and max service infos differ in siNodeNum."""
    run = ses.get(m.Runtime, svc.runtime_id) if svc.runtime_id is not None else None
    space = ses.get(m.Space, svc.space_id) if svc.space_id is not None else None
    version = ses.get(m.ModelVersion, svc.model_version_id)
    out: dict[str, Any] = {
        "space": space.space_name if space else "default",
        "model_version": version.model_version if version else "",
    }
    if run is None:
        return out
    out["run_spec"] = s.TaskSpec.model_validate(run.spec)
    rel = (
        ses.scalar(select(m.NodeRelation).where(m.NodeRelation.node_id == run.node_id))
        if run.node_id
        else None
    )
    if rel is not None:
        sizes = [
            si.si_node_num
            for si in (
                ses.get(m.ServiceInfo, i) for i in (rel.min_service_info_id, rel.max_service_info_id) if i
            )
            if si is not None
        ]
        low, high = min(sizes + [svc.replicas]), max(sizes + [svc.replicas])
        if low != high:
            out["replicas"] = (max(low, 1), high)
    return out


def _public(model_conf: dict[str, Any], *, default: bool) -> bool:
    """modelConf.servicePublic (true / false) when given, else `default` (settings.service_auth)."""
    value = model_conf.get("servicePublic")
    if value is None:
        return default
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "on", "off", "yes", "no"):
        return value.strip().lower() in ("true", "on", "yes")
    if isinstance(value, bool):
        return value
    raise InvalidSpec(f"modelConf.servicePublic is {value!r}: use true or false")


def _model_key(ses: Session, service_id: int) -> tuple[int | None, int] | None:
    svc = ses.get(m.Service, service_id)
    return (svc.space_id, svc.model_id) if svc is not None else None


def _grey_weight(value: Any) -> int:
    """modelConf.greyWeight: the share (1-100) a GREY_DEPLOY version starts with beside the serving one."""
    try:
        weight = int(value)
    except (TypeError, ValueError):
        weight = -1
    if not 0 < weight <= 100 or isinstance(value, bool):
        raise InvalidSpec(f"modelConf.greyWeight is {value!r}: give the new version's share, 1 to 100")
    return weight


def _set_service(ses: Session, service_id: int, *, state: s.ServiceState, reason: str) -> None:
    svc = ses.get(m.Service, service_id)
    if svc is not None:
        svc.state = state.value
        svc.reason = reason
