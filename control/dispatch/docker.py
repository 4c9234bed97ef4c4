"""The Docker adapter (DOCKER pattern): each agent and each inference service is a container.

The engine is `ATOM_DOCKER_HOST` (else `DOCKER_HOST`, else the default socket); nothing talks to it
until a run or a service needs it. A container runs the image's `atom-runtime` entrypoint with the
run's arguments, on host networking by default so the agent reaches control on loopback, with
control's home bound at the same path and the run's resources as its limits (`docker_spec` says
exactly what is asked of the engine). The external id is the container's name
(`atom-<8 hex digits of control's home>-run-7-1`).

- start: pull per `ATOM_DOCKER_PULL` (missing, always, never), create, start; a container that
  fails to start is removed. The same description started twice finds its container again.
- stop: SIGTERM to the entrypoint (through the container's init), SIGKILL after the grace;
  stopping twice, or stopping what has ended, is fine. Control records the run as stopped.
- describe: running or ended, the exit code, and `out of memory (limit N MiB)` when the engine
  killed it for memory. logs: the container's output, which reconcile copies into the run's log.
- release: once the container has ended (at once, or when it does), its output is copied into
  the log file named on its label and the container is removed. A service's container is removed
  as soon as it is seen ended or is stopped, since nothing releases services.
- GPUs are those of the engine's host when the engine is local (shared with the local adapter, so
  no GPU goes to two runs); a remote engine is given none.

Calls to the engine go through `asyncio.to_thread` (the SDK is blocking).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
from pathlib import Path
from typing import Any

from control.aio_tasks import cancel_and_wait
from control.dispatch.base import Adapter, Admission, Infeasible, Observed, RunDescription, shortfall
from control.dispatch.docker_spec import (
    L_KIND,
    L_LOG,
    L_SPEC,
    MIB,
    PULL_POLICIES,
    DockerOptions,
    create_kwargs,
)
from control.dispatch.local_limits import LocalInventory
from control.errors import DispatchFailed

logger = logging.getLogger(__name__)
DEFAULT_HOST = "unix:///var/run/docker.sock"
RELEASE_POLL = 1.0
"""Seconds between looks at a released container that has not ended yet."""


def engine_url(host: str | None) -> str:
    return host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def _gist(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else type(exc).__name__


def describe_exit(state: dict[str, Any], memory: int, *, stopped: bool) -> Observed:
    """How a container ended, in the local adapter's words."""
    code = int(state.get("ExitCode") or 0)
    error = str(state.get("Error") or "")
    if state.get("OOMKilled"):
        limit = f"limit {memory // MIB} MiB" if memory else "no limit set: its host ran out"
        detail = f"out of memory ({limit}): the agent process was killed"
    else:
        name = ""
        if code > 128:
            with contextlib.suppress(ValueError):
                name = signal.Signals(code - 128).name
        if stopped:
            how = f"ended by {name}" if name else f"exited with code {code}"
            if name == "SIGKILL":
                how = "killed by SIGKILL after the grace period"
            detail = f"the agent container was stopped: {how}"
        elif name:
            detail = f"the agent container was ended by {name}" + (" (killed)" if name == "SIGKILL" else "")
        else:
            detail = f"the agent container exited with code {code}"
    if error:
        detail += f" ({error[:200]})"
    return Observed(alive=False, exit_code=code, detail=detail)


class DockerAdapter(Adapter):
    """Agents and services as containers on one Docker engine.

    Args:
        host: the engine's URL (None: `DOCKER_HOST`, else the default socket).
        pull: when to pull an image: `missing`, `always` or `never`.
        inventory: the GPUs of the engine's host and who holds them (shared with the local adapter).
        options: image, network, volumes, name prefix, extra labels, user.
        timeout: seconds an engine call may take (a stop adds its grace).
    """

    name = "docker"

    def __init__(
        self,
        *,
        host: str | None = None,
        pull: str = "missing",
        inventory: LocalInventory | None = None,
        options: DockerOptions | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.host = engine_url(host)
        self.pull = pull
        self.inventory = inventory or LocalInventory([])
        self.options = options or DockerOptions()
        self.timeout = timeout
        self._client: Any = None  # docker.DockerClient
        self._ended: dict[str, Observed] = {}
        self._stopped: set[str] = set()
        self._removing: dict[str, asyncio.Task[None]] = {}

    # -- the engine -----------------------------------------------------------------------------

    def client(self) -> Any:
        """The engine's client (made on first use); raises one line when the engine does not answer."""
        if self._client is None:
            # deferred: only a control that runs containers needs the SDK (imported by its module
            # path: the repository's docker/ folder would shadow the package for mypy)
            from docker.client import DockerClient

            try:
                client = DockerClient(base_url=self.host, timeout=int(self.timeout))
                client.ping()
            except Exception as exc:
                raise DispatchFailed(
                    f"Docker engine at {self.host} is not answering: {_gist(exc)}; "
                    "start dockerd or set ATOM_DOCKER_HOST"
                ) from exc
            self._client = client
        return self._client

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def _inspect(self, external_id: str) -> dict[str, Any] | None:
        import docker.errors

        try:
            return dict(self.client().api.inspect_container(external_id))
        except docker.errors.NotFound:
            return None

    # -- admission ------------------------------------------------------------------------------

    async def _admit(self, desc: RunDescription) -> Admission:
        info = await self._call(lambda: self.client().info())
        req, where = desc.resources, f"the Docker engine at {self.host}"
        gpus = self.inventory.gpus
        if req.total_gpu > len(gpus):
            raise Infeasible(shortfall("GPU", req.total_gpu, len(gpus), where))
        if req.total_cpu > int(info.get("NCPU") or 0):
            raise Infeasible(shortfall("CPU", req.total_cpu, int(info.get("NCPU") or 0), where))
        total_mib = int(info.get("MemTotal") or 0) // MIB
        if req.total_memory_mib > total_mib:
            raise Infeasible(shortfall("MiB", req.total_memory_mib, total_mib, where))
        if not req.total_gpu:
            return Admission(grant={"memoryMib": req.total_memory_mib, "cpu": req.total_cpu})
        grant = self.inventory.reserve(_key(desc), gpus=req.total_gpu, cpus=0)
        if grant is None:
            free = len(self.inventory.free_gpus())
            return Admission(wait=shortfall("GPU", req.total_gpu, free, "", free=True))
        return Admission(grant={"gpus": grant.gpus, "memoryMib": req.total_memory_mib, "cpu": req.total_cpu})

    async def cancel(self, desc: RunDescription) -> None:
        self.inventory.release(_key(desc))

    def adopt(self, external_id: str, grant: dict[str, Any]) -> None:
        from control.dispatch.local_limits import Grant

        if grant.get("gpus"):
            self.inventory.adopt(external_id, Grant(gpus=[str(g) for g in grant["gpus"]]))

    # -- start ----------------------------------------------------------------------------------

    async def _start(self, desc: RunDescription, admission: Admission) -> str:
        if self.pull not in PULL_POLICIES:
            raise DispatchFailed(f"ATOM_DOCKER_PULL is {self.pull!r}: use one of {', '.join(PULL_POLICIES)}")
        image = desc.image or self.options.image
        gpus = [str(g) for g in admission.grant.get("gpus", [])]
        kwargs = create_kwargs(desc, self.options, image=image, gpus=gpus)
        name = kwargs["name"]
        await self._call(self._ensure_image, image)
        await self._call(self._start_sync, kwargs)
        self.inventory.rekey(_key(desc), name)
        self._ended.pop(name, None)
        self._stopped.discard(name)
        logger.info(
            "started %s %s as container %s (image %s, cpus %s, memory %s, gpus %s)",
            desc.kind,
            desc.ident,
            name,
            image,
            f"{desc.resources.total_cpu:g}" if desc.resources.total_cpu else "not limited",
            f"{desc.resources.total_memory_mib} MiB" if desc.resources.total_memory_mib else "not limited",
            ",".join(gpus) or (str(desc.resources.total_gpu) if desc.resources.total_gpu else "none"),
        )
        return str(name)

    def _ensure_image(self, image: str) -> None:
        import docker.errors

        client = self.client()
        if self.pull != "always":
            try:
                client.images.get(image)
                return
            except docker.errors.ImageNotFound:
                if self.pull == "never":
                    raise DispatchFailed(
                        f"image {image} is not on the engine at {self.host} and ATOM_DOCKER_PULL is never: "
                        "build or load it there, or set ATOM_DOCKER_PULL=missing"
                    ) from None
        from docker.utils import parse_repository_tag

        repository, tag = parse_repository_tag(image)
        try:
            client.images.pull(repository, tag=tag or "latest")
        except Exception as exc:
            raise DispatchFailed(
                f"image {image} is not on the engine at {self.host} and could not be pulled: {_gist(exc)}"
            ) from exc

    def _start_sync(self, kwargs: dict[str, Any]) -> None:
        import docker.errors

        client, name = self.client(), kwargs["name"]
        existing = self._inspect(name)
        if existing is not None:
            theirs = existing["Config"].get("Labels") or {}
            if any(theirs.get(k) != v for k, v in self.options.labels.items()):
                raise DispatchFailed(
                    f"a container named {name} already exists on the engine at {self.host} and is not "
                    "this control's: remove it, or give this control its own engine"
                )
            if theirs.get(L_SPEC) == kwargs["labels"][L_SPEC] and existing["State"].get("Running"):
                logger.info("container %s already runs this description; not starting another", name)
                return
            client.api.remove_container(name, force=True)
        container = client.containers.create(**kwargs)
        try:
            container.start()
        except docker.errors.APIError as exc:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
            raise DispatchFailed(
                f"the engine at {self.host} could not start container {name}: {_gist(exc)}"
            ) from exc

    # -- stop / describe / logs -----------------------------------------------------------------

    async def _stop(self, external_id: str, *, grace: float) -> None:
        attrs = await self._call(self._inspect, external_id)
        if attrs is None:
            return
        if attrs["State"].get("Status") == "created":  # never started: nothing to signal
            self._ended[external_id] = Observed(
                alive=False, detail="the agent container was stopped before it started"
            )
            await self._call(self._remove_sync, external_id, attrs)
            return
        if attrs["State"].get("Running"):
            self._stopped.add(external_id)
            seconds = max(1, math.ceil(grace))
            await self._call(self._stop_sync, external_id, seconds)
        if (attrs["Config"].get("Labels") or {}).get(L_KIND) == "service":
            await self._describe(external_id)  # ends the service: its log is kept, its container removed

    def _stop_sync(self, external_id: str, seconds: int) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound):
            self.client().api.stop(external_id, timeout=seconds)

    async def _describe(self, external_id: str) -> Observed:
        if external_id in self._ended:
            return self._ended[external_id]
        attrs = await self._call(self._inspect, external_id)
        if attrs is None:
            return Observed(
                alive=False,
                detail=f"the agent container {external_id} is gone from the engine at {self.host}",
            )
        state = attrs["State"]
        if state.get("Status") not in ("exited", "dead"):
            return Observed(alive=True)
        memory = int(attrs["HostConfig"].get("Memory") or 0)
        seen = describe_exit(state, memory, stopped=external_id in self._stopped)
        self._ended[external_id] = seen
        while len(self._ended) > 10_000:
            self._ended.pop(next(iter(self._ended)))
        if (attrs["Config"].get("Labels") or {}).get(L_KIND) == "service":
            await self._call(self._remove_sync, external_id, attrs)
        return seen

    async def _logs(self, external_id: str) -> str | None:
        return await self._call(self._logs_sync, external_id)

    def _logs_sync(self, external_id: str) -> str | None:
        import docker.errors

        try:
            raw = self.client().api.logs(external_id, stdout=True, stderr=True)
        except docker.errors.NotFound:
            return None
        return bytes(raw).decode("utf-8", "replace")

    # -- release --------------------------------------------------------------------------------

    async def _release(self, external_id: str) -> None:
        self.inventory.release(external_id)
        seen = await self._describe(external_id)
        attrs = await self._call(self._inspect, external_id)
        if attrs is None:
            return
        if not seen.alive:
            await self._call(self._remove_sync, external_id, attrs)
        elif external_id not in self._removing:
            self._removing[external_id] = asyncio.create_task(self._remove_when_ended(external_id))

    async def _remove_when_ended(self, external_id: str) -> None:
        """Remove a released container once it ends (an agent that reported may still be exiting)."""
        try:
            while True:
                try:
                    seen = await self._describe(external_id)
                    if not seen.alive:
                        attrs = await self._call(self._inspect, external_id)
                        if attrs is not None:
                            await self._call(self._remove_sync, external_id, attrs)
                        return
                except DispatchFailed as exc:
                    logger.warning("container %s: %s", external_id, exc)
                await asyncio.sleep(RELEASE_POLL)
        finally:
            self._removing.pop(external_id, None)

    def _remove_sync(self, external_id: str, attrs: dict[str, Any]) -> None:
        """Copy an ended container's output into its log file, then remove it."""
        import docker.errors

        log = (attrs["Config"].get("Labels") or {}).get(L_LOG)
        text = self._logs_sync(external_id)
        if log and text is not None:
            path = Path(log)
            data = text.encode("utf-8", "replace")
            if not path.exists() or path.stat().st_size != len(data):
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(data)
                tmp.replace(path)
        with contextlib.suppress(docker.errors.NotFound):
            self.client().api.remove_container(external_id, force=True)
        self.inventory.release(external_id)
        logger.info("container %s ended and was removed (its output is in %s)", external_id, log)

    # -- resources ------------------------------------------------------------------------------

    async def _describe_resources(self) -> dict[str, Any]:
        def look() -> tuple[dict[str, Any], int]:
            client = self.client()
            info = client.info()
            mine = client.containers.list(
                filters={"label": [L_KIND, *self._label_filters()]}, ignore_removed=True
            )
            return info, len(mine)

        info, running = await self._call(look)
        inv = self.inventory
        return {
            "adapter": self.name,
            "engine": self.host,
            "version": info.get("ServerVersion", ""),
            "total": {
                "cpu": int(info.get("NCPU") or 0),
                "gpu": len(inv.gpus),
                "memoryMib": int(info.get("MemTotal") or 0) // MIB,
            },
            "free": {"gpu": len(inv.free_gpus())},
            "gpus": inv.gpus,
            "containers": running,
            "network": self.options.network,
        }

    def _label_filters(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.options.labels.items()]

    async def aclose(self) -> None:
        removing = list(self._removing.values())
        for task in removing:
            task.cancel()  # all at once; then each is waited for
        for task in removing:
            await cancel_and_wait(task)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._call(self._client.close)
            self._client = None


def _key(desc: RunDescription) -> str:
    return f"docker:{desc.kind}:{desc.ident}"
