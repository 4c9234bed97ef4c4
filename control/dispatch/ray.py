"""The Ray adapter: each agent is a Ray job, submitted through the Ray Jobs API (`JobSubmissionClient`).

The cluster is `ATOM_RAY_ADDRESS` (with its dashboard URL) or, when none is configured, the one
local head control starts the first time a run needs it (`RayHead`). A job's entrypoint is
`python -m runtime_agent run --run-id N` with the run's resources as entrypoint resources (the
whole request when the agent trains its single worker itself; a bare driver when Ray Train
workers hold them), and the run's environment as the runtime_env's `env_vars`: the agent fetches
its spec and its operator code from control itself, so no code travels through Ray's 100 MiB
working_dir upload. Stop, describe and logs go through the same API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import uuid
from typing import TYPE_CHECKING, Any

from control.dispatch.base import Adapter, Admission, Infeasible, Observed, RunDescription, shortfall
from control.dispatch.ray_head import RayHead
from control.errors import DispatchFailed

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

logger = logging.getLogger(__name__)
MIB = 1024 * 1024
STOP_GRACE = 5.0
"""Seconds a stopped job's agent has between SIGTERM and SIGKILL. Ray fixes it per job at submit
(`RAY_JOB_STOP_WAIT_TIME_S` in the job's env), so `stop(grace=...)` cannot change it later."""


def entrypoint_resources(desc: RunDescription) -> dict[str, float]:
    """CPU / GPU / memory (bytes) the job's driver holds."""
    plan = desc.plan
    if plan is None:
        return {"CPU": desc.resources.cpu, "GPU": float(desc.resources.gpu), "memory": 0.0}
    if plan.workers == 1 and desc.env.get("ATOM_TRAIN_EXECUTOR", "auto") != "ray":
        return {
            "CPU": plan.cpus_per_worker,
            "GPU": plan.gpus_per_worker,
            "memory": float(plan.memory_mib_per_worker * MIB),
        }
    return {"CPU": 0.0, "GPU": 0.0, "memory": 0.0}


class RayAdapter(Adapter):
    """Agents as Ray jobs.

    Args:
        address: GCS address of an external cluster (None: a local head started on first need).
        dashboard_url: that cluster's Jobs API URL (None: port 8265 on the address's host).
        head: the local head to start when there is no external cluster.
        python: the interpreter that runs the agent on the Ray nodes.
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        dashboard_url: str | None = None,
        head: RayHead | None = None,
        python: str | None = None,
    ) -> None:
        self.address = address
        self.dashboard_url = dashboard_url or (
            f"http://{address.split('://')[-1].rsplit(':', 1)[0]}:8265" if address else None
        )
        self.head = head if address is None else None
        self.python = python
        self._client: JobSubmissionClient | None = None
        self._lock = asyncio.Lock()
        self._requests: dict[str, dict[str, float]] = {}
        self._running: set[str] = set()
        self._head_start: asyncio.Task[tuple[str, str]] | None = None

    def head_wait(self) -> str | None:
        """None when the cluster can take a job now; else starts control's local head in the
        background and says what a run waits for meanwhile (a dispatch does not hold a request
        for the seconds a head takes to come up; the reconcile loop dispatches it again).

        Raises:
            DispatchFailed: the last background start failed (the next call tries again).
        """
        if self.head is None or self.head.running:
            return None
        task = self._head_start
        if task is not None and task.done():
            self._head_start = None
            exc = task.exception()
            if exc is not None:
                raise DispatchFailed(f"control's local Ray head did not start: {_gist(exc)}") from exc
            return None
        if task is None:
            self._head_start = asyncio.get_running_loop().create_task(self.ensure())
        return "waiting for control's local Ray head to start"

    @property
    def external(self) -> bool:
        return self.address is not None

    async def ensure(self) -> tuple[str, str]:
        """The cluster's (GCS address, dashboard URL): starts the local head the first time."""
        async with self._lock:
            if self.head is not None and not self.head.running:
                self._client = None
                await asyncio.to_thread(self.head.start)
            if self.head is not None:
                return self.head.address, self.head.dashboard_url
            assert self.address is not None and self.dashboard_url is not None
            return self.address, self.dashboard_url

    async def client(self) -> JobSubmissionClient:
        _, url = await self.ensure()
        if self._client is None:
            from ray.job_submission import JobSubmissionClient  # deferred: Ray costs seconds to import

            try:
                self._client = await asyncio.to_thread(JobSubmissionClient, url)
            except Exception as exc:
                raise DispatchFailed(
                    f"the Ray cluster's Jobs API at {url} does not answer: {_gist(exc)} "
                    "(check ATOM_RAY_ADDRESS / ATOM_RAY_DASHBOARD_URL)"
                ) from exc
        return self._client

    # -- resources ------------------------------------------------------------------------------

    async def cluster(self) -> dict[str, Any]:
        """`{"total": {...}, "used": {...}, "largest": {...}}` from the dashboard (memory in bytes)."""
        import httpx  # deferred: only the Ray adapter asks the dashboard

        address, url = await self.ensure()
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                nodes = (
                    await http.get(f"{url}/api/v0/nodes", params={"detail": "1", "limit": "1000"})
                ).json()
                status = (await http.get(f"{url}/api/cluster_status")).json()
        except (httpx.HTTPError, ValueError) as exc:
            why = _gist(exc) or type(exc).__name__
            raise DispatchFailed(
                f"the Ray cluster at {address} does not answer (dashboard {url}: {why}): "
                "check ATOM_RAY_ADDRESS / ATOM_RAY_DASHBOARD_URL"
            ) from exc
        rows = nodes.get("data", {}).get("result", {}).get("result", [])
        alive = [n.get("resources_total", {}) for n in rows if n.get("state", "ALIVE") == "ALIVE"]
        keys = ("CPU", "GPU", "memory")
        total = {k: float(sum(n.get(k, 0) for n in alive)) for k in keys}
        largest = {k: float(max((n.get(k, 0) for n in alive), default=0)) for k in keys}
        usage = status.get("data", {}).get("clusterStatus", {}).get("loadMetricsReport", {}).get("usage", {})
        used = {k: float((usage.get(k) or [0, 0])[0]) for k in keys}
        return {"total": total, "used": used, "largest": largest, "nodes": len(alive)}

    async def _admit(self, desc: RunDescription) -> Admission:
        wait = self.head_wait()
        if wait:
            return Admission(wait=wait)
        info = await self.cluster()
        where = f"the Ray cluster at {await self._where()}"
        need = entrypoint_resources(desc)
        for key, label in (("GPU", "GPU"), ("CPU", "CPU")):
            if need[key] > info["largest"][key]:
                raise Infeasible(shortfall(label, need[key], info["largest"][key], where + " (largest node)"))
        if need["memory"] > info["largest"]["memory"]:
            raise Infeasible(
                shortfall(
                    "MiB", need["memory"] / MIB, info["largest"]["memory"] // MIB, where + " (largest node)"
                )
            )
        plan = desc.plan
        if plan is not None and plan.use_gpu and plan.workers * plan.gpus_per_worker > info["total"]["GPU"]:
            raise Infeasible(
                f"needs {plan.workers * plan.gpus_per_worker:g} GPU for {plan.workers} workers; "
                f"{where} has {info['total']['GPU']:g}"
            )
        return Admission(grant={"entrypoint": need})

    async def _where(self) -> str:
        address, _ = await self.ensure()
        return address

    # -- start / stop / describe ----------------------------------------------------------------

    async def _start(self, desc: RunDescription, admission: Admission) -> str:
        client = await self.client()
        need = admission.grant.get("entrypoint") or entrypoint_resources(desc)
        address, _ = await self.ensure()
        env = dict(desc.env)
        env.pop("RAY_ADDRESS", None)  # the job's driver gets the cluster's own address from Ray
        env.setdefault("RAY_JOB_STOP_WAIT_TIME_S", str(int(STOP_GRACE)))  # SIGTERM -> SIGKILL, as locally
        if not self.external and desc.workdir is not None:  # same host: control's cwd, as for local runs
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(desc.workdir), env.get("PYTHONPATH", "")) if p
            )
        command = list(desc.command)
        if self.python:
            command[0] = self.python
        submission_id = f"atom-{desc.kind}-{desc.ident}-{uuid.uuid4().hex[:8]}"

        def submit() -> str:
            return client.submit_job(
                entrypoint=shlex.join(command),
                submission_id=submission_id,
                runtime_env={"env_vars": env},
                entrypoint_num_cpus=need["CPU"],
                entrypoint_num_gpus=need["GPU"],
                entrypoint_memory=int(need["memory"]),
                metadata={
                    "atom.kind": desc.kind,
                    "atom.id": str(desc.ident),
                    "atom.name": desc.name,
                    **{f"atom.{key}": f"{value:g}" for key, value in need.items()},
                },
            )

        job_id = await asyncio.to_thread(submit)
        self._requests[job_id] = dict(need)
        logger.info("submitted %s %s as Ray job %s on %s (%s)", desc.kind, desc.ident, job_id, address, need)
        return job_id

    async def _stop(self, external_id: str, *, grace: float) -> None:
        client = await self.client()
        try:
            await asyncio.to_thread(client.stop_job, external_id)
        except RuntimeError as exc:
            if "does not exist" in str(exc):
                return
            raise
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(grace, STOP_GRACE) + 5
        while loop.time() < deadline:
            if not (await self._describe(external_id)).alive:
                return
            await asyncio.sleep(0.2)

    async def _describe(self, external_id: str) -> Observed:
        client = await self.client()
        try:
            info = await asyncio.to_thread(client.get_job_info, external_id)
        except RuntimeError as exc:
            if "does not exist" in str(exc):
                return Observed(alive=False, detail=f"the Ray job {external_id} is gone from the cluster")
            raise
        status = str(info.status.value if hasattr(info.status, "value") else info.status)
        if status == "PENDING":
            return Observed(alive=True, waiting=await self._waiting(external_id, info))
        if status == "RUNNING":
            self._running.add(external_id)
            return Observed(alive=True)
        self._running.discard(external_id)
        code = info.driver_exit_code
        if status == "SUCCEEDED":
            return Observed(alive=False, exit_code=0, detail=f"the Ray job {external_id} succeeded")
        if status == "STOPPED":
            return Observed(alive=False, exit_code=code, detail=f"the Ray job {external_id} was stopped")
        why = _gist(info.message or "")
        return Observed(
            alive=False,
            exit_code=code if code is not None else 1,
            detail=f"the Ray job {external_id} failed"
            + (f": the agent exited with code {code}" if code is not None else "")
            + (f" ({why})" if why and code is None else ""),
        )

    async def _waiting(self, external_id: str, info: Any) -> str:
        meta = info.metadata or {}
        need = self._requests.get(external_id) or {  # a job submitted by an earlier control
            key: float(meta.get(f"atom.{key}", 0) or 0) for key in ("CPU", "GPU", "memory")
        }
        try:
            cluster = await self.cluster()
        except Exception:  # the reason is a courtesy: keep Ray's own words
            return _gist(info.message or "waiting in the Ray cluster")
        for key, label in (("GPU", "GPU"), ("CPU", "CPU"), ("memory", "MiB")):
            # the dashboard's usage lags by seconds: what this control's running jobs hold counts at once
            held = sum(self._requests.get(job, {}).get(key, 0.0) for job in self._running)
            free = cluster["total"][key] - max(cluster["used"][key], held)
            if need.get(key, 0) > free + 1e-9:
                scale = MIB if key == "memory" else 1
                return shortfall(label, need[key] / scale, max(free, 0) / scale, "", free=True)
        return "waiting for the Ray job to start (runtime environment, worker start)"

    async def _logs(self, external_id: str) -> str | None:
        client = await self.client()
        try:
            return str(await asyncio.to_thread(client.get_job_logs, external_id))
        except RuntimeError as exc:
            if "does not exist" in str(exc):
                return None
            raise

    async def _release(self, external_id: str) -> None:
        self._requests.pop(external_id, None)
        self._running.discard(external_id)

    async def _describe_resources(self) -> dict[str, Any]:
        info = await self.cluster()
        return {
            "adapter": self.name,
            "address": await self._where(),
            "startedByControl": not self.external,
            "total": {
                "cpu": info["total"]["CPU"],
                "gpu": info["total"]["GPU"],
                "memoryMib": info["total"]["memory"] // MIB,
            },
            "free": {
                "cpu": info["total"]["CPU"] - info["used"]["CPU"],
                "gpu": info["total"]["GPU"] - info["used"]["GPU"],
                "memoryMib": (info["total"]["memory"] - info["used"]["memory"]) // MIB,
            },
            "nodes": info["nodes"],
        }

    async def aclose(self) -> None:
        if self._head_start is not None:  # a head coming up is stopped too, once it is up
            with contextlib.suppress(Exception):
                await self._head_start
        if self.head is not None and self.head.running:
            await asyncio.to_thread(self.head.stop)


def _gist(value: object) -> str:
    lines = [ln.strip() for ln in str(value).strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""
