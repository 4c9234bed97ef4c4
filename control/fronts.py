"""A model's stable endpoint: one routing front (`atom-runtime front`) per model and space.

The front is the endpoint people call: it splits the model's requests between its ready local
versions by their weights, copies a share to a mirror candidate, and keeps answering with the
table it was last given while control is down (it keeps the table in its state file). Control
starts it beside the first ready version, pushes it a new table (with its admin token, kept
encrypted in the store) whenever a version becomes ready, is stopped or gets another weight,
starts it again on the same port when its process ended, and stops it with the model's last
version. A version leaves the table in two steps: weight 0 first, and only when the front says
no request to it is in flight is its process stopped (`drain`), so a switch drops no request.

Services on Kubernetes get the same split from a Gateway API HTTPRoute (rendered with their
manifests); services in containers are reached directly.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from control import schemas as s
from control import traffic
from control.dispatch.base import ResourceRequest, RunDescription
from control.dispatch.describe import base_env
from control.dispatch.k8s_names import dns_label
from control.errors import ControlError, NotFound
from control.secrets import new_token
from control.store import models as m

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from control.dispatch import Adapter
    from control.secrets import Vault
    from control.settings import Settings

    T = TypeVar("T")

logger = logging.getLogger(__name__)

FRONTED = frozenset({"local"})
"""Adapters whose services are reached through a front started by control."""
ADMIN = "/_atom/front"
READY_WAIT_S = 15.0
DRAIN_WAIT_S = 30.0


def front_name(service_name: str) -> str:
    """`serving-churn-3` -> `serving-churn`: the service name without the version's digits."""
    head, _, tail = service_name.rpartition("-")
    return dns_label(head if head and tail.isdigit() else service_name, letter_first=True)


def normalized(weights: list[int]) -> list[int]:
    """`weights` scaled to sum to exactly 100 (largest remainders); all 0: the last takes 100."""
    total = sum(weights)
    if total == 100 or not weights:
        return list(weights)
    if total == 0:
        return [0] * (len(weights) - 1) + [100]
    exact = [100 * w / total for w in weights]
    out = [int(x) for x in exact]
    for i in sorted(range(len(out)), key=lambda i: out[i] - exact[i])[: 100 - sum(out)]:
        out[i] += 1
    return out


def routing_table(ses: Session, space_id: int | None, model_id: int) -> dict[str, Any] | None:
    """The front's table for the model's ready local versions (None: it serves none)."""
    ready = ses.scalars(
        select(m.Service)
        .where(
            m.Service.model_id == model_id,
            m.Service.space_id == space_id,
            m.Service.state == s.ServiceState.READY.value,
            m.Service.adapter.in_(sorted(FRONTED)),
            m.Service.endpoint.is_not(None),
        )
        .order_by(m.Service.id)
    ).all()
    if not ready:
        return None
    weights = normalized([v.traffic_weight for v in ready])
    table: dict[str, Any] = {
        "service": front_name(ready[-1].service_name),
        "versions": [
            {"version": v.service_name, "weight": w, "replicas": [v.endpoint]}
            for v, w in zip(ready, weights, strict=True)
        ],
        "mirror": None,
    }
    for v, w in zip(ready, weights, strict=True):
        if v.mirror_percent and w < 100:
            table["mirror"] = {"version": v.service_name, "percent": v.mirror_percent}
    return table


class FrontOps:
    """Front operations of the orchestrator (a mixin of `Deployments`)."""

    settings: Settings
    vault: Vault
    _front_locks: dict[tuple[int | None, int], asyncio.Lock]

    async def db(self, fn: Callable[[Session], T]) -> T:  # provided by Orchestrator
        raise NotImplementedError

    def adapter(self, name: str) -> Adapter:  # provided by Orchestrator
        raise NotImplementedError

    def _front_lock(self, key: tuple[int | None, int]) -> asyncio.Lock:
        locks = self.__dict__.setdefault("_front_locks", {})
        return locks.setdefault(key, asyncio.Lock())

    async def sync_front(self, space_id: int | None, model_id: int) -> None:
        """Bring the model's front in line with its ready versions: start it (or again, on its
        port), push the table, or stop it when no version is left. Failures are logged and kept
        as the front's reason; the reconcile loop tries again."""
        async with self._front_lock((space_id, model_id)):
            try:
                await self._sync_front(space_id, model_id)
            except (ControlError, httpx.HTTPError, OSError) as exc:
                why = f"{type(exc).__name__}: {exc}" if isinstance(exc, httpx.HTTPError) else str(exc)
                logger.warning("front of model %s: %s", model_id, why)
                await self.db(lambda ses: _mark(ses, space_id, model_id, "failed", why))

    async def _sync_front(self, space_id: int | None, model_id: int) -> None:
        def load(ses: Session) -> tuple[dict[str, Any] | None, m.ServiceFront | None]:
            table = routing_table(ses, space_id, model_id)
            row = front_of(ses, space_id, model_id)
            if row is None and table is not None:
                row = m.ServiceFront(
                    space_id=space_id, model_id=model_id, front_name=table["service"], state="starting"
                )
                ses.add(row)
                ses.flush()
            return table, row

        table, row = await self.db(load)
        if row is None:
            return
        if table is None:
            if row.external_id:
                await self.adapter(row.adapter).stop(row.external_id, grace=10)
            await self.db(lambda ses: _mark(ses, space_id, model_id, "stopped", "no ready version left"))
            return
        alive = row.state == "ready" and row.external_id is not None
        if alive:
            assert row.external_id is not None
            alive = (await self.adapter(row.adapter).describe(row.external_id)).alive
        token = self.vault.decrypt(row.token_enc) if alive and row.token_enc else None
        if not alive or token is None:
            token = await self._start_front(row)
        assert row.endpoint is not None
        async with httpx.AsyncClient(timeout=10) as http:
            resp = await http.put(
                f"{row.endpoint}{ADMIN}/routes", json=table, headers={"Authorization": f"Bearer {token}"}
            )
        if resp.status_code != 200:
            raise ControlError(f"the front refused the routing table ({resp.status_code}): {resp.text[:300]}")
        await self.db(lambda ses: _mark(ses, space_id, model_id, "ready", ""))

    async def _start_front(self, row: m.ServiceFront) -> str:
        """Start the front's process (on its port when it had one); returns its admin token."""
        from control.deploy import free_port  # deferred: deploy imports this module

        token = new_token()
        port = row.port or free_port()
        folder = self.settings.services_dir / "fronts" / str(row.id)
        folder.mkdir(parents=True, exist_ok=True)
        args = ("front", "--port", str(port), "--host", "127.0.0.1", "--state", str(folder / "routes.json"))
        env = base_env(self.settings)
        env["ATOM_FRONT_TOKEN"] = token
        desc = RunDescription(
            kind="front",
            ident=row.id,
            name=row.front_name,
            command=[self.settings.python or sys.executable, "-m", "runtime_agent", *args],
            args=args,
            env=env,
            log_path=folder / "front.log",
            resources=ResourceRequest(cpu=0),
        )
        if row.external_id:  # an ended one (or one whose token is lost): make sure it is gone
            await self.adapter(row.adapter).stop(row.external_id, grace=5)
        external_id = await self.adapter(row.adapter).start(desc)
        endpoint = f"http://127.0.0.1:{port}"
        enc = self.vault.encrypt(token)

        def started(ses: Session) -> None:
            front = ses.get(m.ServiceFront, row.id)
            assert front is not None
            front.port, front.endpoint, front.external_id, front.token_enc = port, endpoint, external_id, enc
            front.state, front.reason = "starting", ""

        await self.db(started)
        row.port, row.endpoint, row.external_id = port, endpoint, external_id
        await _wait_healthy(endpoint, self.adapter(row.adapter), external_id)
        return token

    async def set_weight(self, service_id: int, weight: int) -> None:
        """Give the version `weight`% (the others share the rest) and push the new split."""

        def change(ses: Session) -> tuple[int | None, int]:
            svc = ses.get(m.Service, service_id)
            if svc is None:
                raise NotFound(f"service {service_id} does not exist")
            traffic.split(ses, svc, weight)
            return svc.space_id, svc.model_id

        await self.sync_front(*await self.db(change))

    async def drain(self, space_id: int | None, model_id: int, version: str) -> bool:
        """Wait (up to DRAIN_WAIT_S) until the front has no request to `version` in flight; True
        when it has none (or there is no front to ask)."""
        endpoint = await self.db(lambda ses: _endpoint(ses, space_id, model_id))
        if endpoint is None:
            return True
        loop = asyncio.get_running_loop()
        wait = DRAIN_WAIT_S
        deadline = loop.time() + wait
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                try:
                    stats = (await http.get(f"{endpoint}{ADMIN}/stats")).json()
                except (httpx.HTTPError, ValueError):
                    return True  # no front answering: nothing is in flight through it
                if _in_flight(stats, version) == 0:
                    return True
                if loop.time() > deadline:
                    logger.warning("front of model %s: %s still busy after %.0f s", model_id, version, wait)
                    return False
                await asyncio.sleep(0.05)


def _in_flight(stats: dict[str, Any], version: str) -> int:
    for v in stats.get("versions") or []:
        if v.get("version") == version:
            return int(v.get("inFlight") or 0)
    return 0


async def _wait_healthy(endpoint: str, adapter: Adapter, external_id: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_WAIT_S
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            try:
                if (await http.get(f"{endpoint}{ADMIN}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            observed = await adapter.describe(external_id)
            if not observed.alive:
                raise ControlError(f"the front at {endpoint} ended at start: {observed.detail}")
            if loop.time() > deadline:
                raise ControlError(f"the front at {endpoint} did not answer within {READY_WAIT_S:.0f} s")
            await asyncio.sleep(0.05)


def front_of(ses: Session, space_id: int | None, model_id: int) -> m.ServiceFront | None:
    """The front of the model in the space, if it has one."""
    return ses.scalar(
        select(m.ServiceFront).where(m.ServiceFront.space_id == space_id, m.ServiceFront.model_id == model_id)
    )


def _endpoint(ses: Session, space_id: int | None, model_id: int) -> str | None:
    row = front_of(ses, space_id, model_id)
    return row.endpoint if row is not None and row.state == "ready" else None


def _mark(ses: Session, space_id: int | None, model_id: int, state: str, reason: str) -> None:
    row = front_of(ses, space_id, model_id)
    if row is not None:
        row.state, row.reason = state, reason[:1000]
        if state == "stopped":
            row.external_id = None


def front_endpoint(ses: Session, svc: m.Service) -> str | None:
    """The stable endpoint of `svc`'s model (its front), when one is serving."""
    return _endpoint(ses, svc.space_id, svc.model_id)
