"""The dispatch seam (seed 003): start / stop / describe a run, its logs, and the resources a target has.

Control describes what to run (`RunDescription`: the agent's command, the environment built for
it, the resources asked, the image and the operator code); each adapter turns that into its own
launch: a process with limits (`local`), a Ray job with entrypoint resources (`ray`), a container
or a pod later. Adapters override the `_`-methods; the public methods map every failure to one
`DispatchFailed` line naming the adapter (SkyPilot's template-method backends).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from control.errors import ControlError, DispatchFailed
from control.schemas.resources import ResourceRequest, WorkerPlan

logger = logging.getLogger(__name__)
LOG_SHIP_ENV = "ATOM_LOG_SHIP"


@dataclass(frozen=True)
class CodeRef:
    """Where the operator's code comes from (seed 000 codeMode / codeAddress / codeVersion)."""

    mode: str = "MODULE"
    address: str = ""
    version: str = ""


@dataclass(frozen=True)
class RunDescription:
    """What to run, independent of where: the adapter builds its launch from this.

    Attributes:
        kind: `run` (`atom-runtime run`) or `service` (`atom-runtime serve`).
        ident: the runtime id or the service id.
        name: the node or service name (labels, job names).
        space: the space's name (a namespace on Kubernetes).
        command: the agent's command line on control's host (interpreter included).
        args: the agent's arguments after its entrypoint (`run --run-id 7`): what a container
            target passes to the image's `atom-runtime` entrypoint.
        env: the whole environment of the agent: built by control, never inherited.
        resources: what the run asked for (per node, and the node count).
        plan: the training workers that request becomes.
        log_path: where control keeps the agent's log (the local adapter writes it directly;
            others copy what their target collected).
        workdir: the agent's working directory where the target shares control's disk.
        image: the container image (service info siImageName), for container targets.
        code: the operator code reference, for targets that ship code themselves.
        attempt: the run's attempt number (part of idempotent external names).
        retries: how often the target may restart a failed agent by itself (the node's
            maxRetries: a Kubernetes Job's backoffLimit).
        environment_conf: the operator's environmentConf as given: container targets read their
            placement from it (nodeSelector, tolerations, volumes, timeoutSeconds).
        replicas: (min, max) replicas of a service (from the node's min and max service infos);
            None: `resources.nodes`, fixed.
        service_type: a service's type (service info siType), the first part of its name on
            Kubernetes (`{type}-{model}-{version digits}`, seed 001).
    """

    kind: str
    ident: int
    name: str
    command: list[str]
    env: dict[str, str] = field(repr=False)
    log_path: Path
    resources: ResourceRequest = field(default_factory=ResourceRequest)
    plan: WorkerPlan | None = None
    space: str = "default"
    workdir: Path | None = None
    image: str = ""
    code: CodeRef = field(default_factory=CodeRef)
    attempt: int = 1
    args: tuple[str, ...] = ()
    retries: int = 0
    environment_conf: Mapping[str, Any] = field(default_factory=dict)
    replicas: tuple[int, int] | None = None
    service_type: str = ""


@dataclass(frozen=True)
class Observed:
    """What the adapter sees of a started agent.

    Attributes:
        alive: it has not ended (it may still wait for resources).
        exit_code: how it ended (None while alive or when unknown).
        detail: a one-line account of how it ended (`the agent process exited with code 3`).
        waiting: why it has not started yet (`waiting for 1 GPU (0 free)`), while it waits.
        certain: the target itself says it ended, with no exit code (an image that cannot be
            pulled): control fails the run at once, even in its grace period after a restart.
    """

    alive: bool
    exit_code: int | None = None
    detail: str = ""
    waiting: str = ""
    certain: bool = False


@dataclass(frozen=True)
class Admission:
    """An adapter's answer to "can this run start now?".

    Attributes:
        wait: why it must wait for resources to free (empty: it can start now).
        grant: what the adapter set aside for it (e.g. GPU indices), recorded with the schedule.
    """

    wait: str = ""
    grant: dict[str, Any] = field(default_factory=dict)


class Infeasible(DispatchFailed):
    """The request can never be met by this target (more GPUs than it has): the run fails at start."""

    status_code = 422


class Adapter(abc.ABC):
    """One dispatch target. Subclasses set `name` and implement the `_`-methods."""

    name: ClassVar[str]
    ships_logs: ClassVar[bool] = True
    """The target's disk is not control's: a run's agent sends its output to control too
    (`ATOM_LOG_SHIP`), so its log outlives the job, container or pod."""

    async def admit(self, desc: RunDescription) -> Admission:
        """Check the request against what the target has and reserve it.

        Raises:
            Infeasible: the target can never satisfy the request (the message names the shortfall).
        """
        with self._mapped("check resources for", desc):
            return await self._admit(desc)

    async def start(self, desc: RunDescription, admission: Admission | None = None) -> str:
        """Start the agent; return its external id (pid, Ray job id, pod name).

        Raises:
            DispatchFailed: it could not be started (one line: what and why).
        """
        with self._mapped("start", desc):
            return await self._start(self._with_shipping(desc), admission or Admission())

    async def stop(self, external_id: str, *, grace: float = 10.0) -> None:
        """Ask the agent to stop (SIGTERM), force it after `grace` seconds; stopping twice is fine."""
        with self._mapped("stop", None, external_id):
            await self._stop(external_id, grace=grace)

    async def describe(self, external_id: str) -> Observed:
        """Is it alive (or waiting), and if not, how did it end?"""
        with self._mapped("describe", None, external_id):
            return await self._describe(external_id)

    async def logs(self, external_id: str) -> str | None:
        """What the target collected of the agent's output (None: control's log file has it all)."""
        with self._mapped("read the logs of", None, external_id):
            return await self._logs(external_id)

    async def settled(self, external_id: str) -> bool:
        """Has everything the target ran for an ended run ended, so that `logs` is complete? (A
        stopped pod still runs its SIGTERM handler while the run reads as stopped.)"""
        with self._mapped("look at", None, external_id):
            return await self._settled(external_id)

    async def release(self, external_id: str) -> None:
        """Free what `admit` reserved for a run that ended (GPUs, a cgroup)."""
        with self._mapped("release", None, external_id):
            await self._release(external_id)

    async def describe_resources(self) -> dict[str, Any]:
        """What the target has: `{"total": {...}, "free": {...}, ...}` (CPU, GPU, memory in MiB)."""
        with self._mapped("describe the resources of", None, self.name):
            return await self._describe_resources()

    def endpoint(self, desc: RunDescription, port: int) -> str:
        """Where control reaches a started service's `/v2` routes (a local port by default)."""
        return f"http://127.0.0.1:{port}"

    async def cancel(self, desc: RunDescription) -> None:  # noqa: B027 - optional hook
        """Give back what `admit` set aside for a run that was not started after all."""

    def adopt(self, external_id: str, grant: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Hold again what an agent started by an earlier control holds (its schedule's `granted`)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the adapter holds (not the agents it started)."""

    def _with_shipping(self, desc: RunDescription) -> RunDescription:
        """`desc` with `ATOM_LOG_SHIP=1` for a run on a target that ships logs (unless the node set it)."""
        if not self.ships_logs or desc.kind != "run" or LOG_SHIP_ENV in desc.env:
            return desc
        return dataclasses.replace(desc, env={**desc.env, LOG_SHIP_ENV: "1"})

    # -- for subclasses -------------------------------------------------------------------------

    async def _admit(self, desc: RunDescription) -> Admission:
        return Admission()

    @abc.abstractmethod
    async def _start(self, desc: RunDescription, admission: Admission) -> str: ...

    @abc.abstractmethod
    async def _stop(self, external_id: str, *, grace: float) -> None: ...

    @abc.abstractmethod
    async def _describe(self, external_id: str) -> Observed: ...

    async def _logs(self, external_id: str) -> str | None:
        return None

    async def _settled(self, external_id: str) -> bool:
        return True

    async def _release(self, external_id: str) -> None:
        return None

    async def _describe_resources(self) -> dict[str, Any]:
        return {}

    @contextlib.contextmanager
    def _mapped(self, action: str, desc: RunDescription | None, what: str = "") -> Iterator[None]:
        try:
            yield
        except ControlError:
            raise
        except Exception as exc:
            target = f"{desc.kind} {desc.ident}" if desc is not None else what
            logger.debug("%s adapter failed to %s %s", self.name, action, target, exc_info=True)
            raise DispatchFailed(f"{self.name} adapter could not {action} {target}: {exc}") from exc


def shortfall(kind: str, wanted: float, have: float, where: str, *, free: bool = False) -> str:
    """`needs 4 GPU; the Ray cluster at X has 0` or `waiting for 1 GPU (0 free)`."""
    if free:
        return f"waiting for {wanted:g} {kind} ({have:g} free)"
    return f"needs {wanted:g} {kind}; {where} has {have:g}"


__all__ = [
    "Adapter",
    "Admission",
    "CodeRef",
    "Infeasible",
    "Observed",
    "RunDescription",
    "shortfall",
]
