"""What runs a simulated pod's container: a Docker engine (the real thing: the pod's image, its
command and args, env, memory and CPU limits, binds, host networking) or, on a machine where no
engine can start, a local process (the container's command with the pod's env, in a memory cgroup
where one can be made; mount paths are translated to host directories since a process has no
mount namespace of its own).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


def stamp(when: float | None = None) -> str:
    return dt.datetime.fromtimestamp(when or time.time(), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Mount:
    host: str
    path: str
    read_only: bool = False


@dataclass
class ContainerSpec:
    """One container of a pod, as the kubelet hands it to the runtime."""

    name: str  # unique on the runtime: k8s_{container}_{pod}_{namespace}_{uid8}_{attempt}
    image: str
    command: list[str]  # the entrypoint override ([]: the image's)
    args: list[str]
    env: dict[str, str]
    working_dir: str | None = None
    mounts: list[Mount] = field(default_factory=list)
    memory_bytes: int | None = None
    nano_cpus: int | None = None
    gpus: int = 0
    user: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Exit:
    """How a container ended, in the kubelet's words (`state.terminated`)."""

    code: int
    reason: str  # Completed, Error, OOMKilled, StartError
    started_at: str
    finished_at: str
    message: str = ""


class Container(Protocol):
    id: str
    started_at: str

    def wait(self) -> Exit: ...
    def exited(self) -> bool: ...
    def logs(self) -> bytes: ...
    def stop(self, grace: float) -> None: ...
    def remove(self) -> None: ...


class StartFailed(Exception):
    """The runtime could not start the container (the kubelet reports StartError, exit 128)."""


class Runtime(Protocol):
    kind: str

    def has_image(self, image: str) -> bool: ...
    def start(self, spec: ContainerSpec) -> Container: ...
    def close(self) -> None: ...


def _reason(code: int, oom: bool) -> str:
    return "OOMKilled" if oom else "Completed" if code == 0 else "Error"


# -- Docker ---------------------------------------------------------------------------------------


class DockerContainer:
    def __init__(self, container: Any) -> None:
        self._c = container
        self.id = f"docker://{container.id}"
        self.started_at = stamp()

    def wait(self) -> Exit:
        with contextlib.suppress(Exception):
            self._c.wait()
        self._c.reload()
        state = self._c.attrs["State"]
        code = int(state.get("ExitCode", 137))
        return Exit(code, _reason(code, bool(state.get("OOMKilled"))), self.started_at, stamp())

    def exited(self) -> bool:
        try:
            self._c.reload()
        except Exception:  # noqa: BLE001 - removed: it has ended
            return True
        return self._c.status in ("exited", "dead")

    def logs(self) -> bytes:
        try:
            return bytes(self._c.logs(stdout=True, stderr=True))
        except Exception:  # noqa: BLE001 - a removed container has no logs left
            return b""

    def stop(self, grace: float) -> None:
        with contextlib.suppress(Exception):
            self._c.stop(timeout=max(int(grace), 0))  # SIGTERM, SIGKILL after grace

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self._c.remove(force=True)


class DockerRuntime:
    """Containers on a Docker engine, host networking (the only network the test engine has)."""

    kind = "docker"

    def __init__(self, client: Any, label: str) -> None:
        self.client = client
        self.label = label  # every container carries atom-sim=<label>, so close() finds them all

    def has_image(self, image: str) -> bool:
        import docker

        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    def start(self, spec: ContainerSpec) -> Container:
        from docker.types import DeviceRequest
        from docker.types import Mount as DockerMount

        import docker

        kwargs: dict[str, Any] = {
            "name": spec.name,
            "command": spec.args or None,
            "entrypoint": spec.command or None,
            "environment": spec.env,
            "network_mode": "host",
            "working_dir": spec.working_dir,
            "mounts": [DockerMount(m.path, m.host, type="bind", read_only=m.read_only) for m in spec.mounts],
            "labels": {"atom-sim": self.label, **spec.labels},
            "detach": True,
        }
        if spec.memory_bytes:
            kwargs["mem_limit"] = spec.memory_bytes
            kwargs["memswap_limit"] = spec.memory_bytes  # no swap, as on a kubelet
        if spec.nano_cpus:
            kwargs["nano_cpus"] = spec.nano_cpus
        if spec.gpus:
            kwargs["device_requests"] = [DeviceRequest(count=spec.gpus, capabilities=[["gpu"]])]
        if spec.user:
            kwargs["user"] = spec.user
        try:
            container = self.client.containers.create(spec.image, **kwargs)
        except docker.errors.APIError as exc:
            raise StartFailed(str(exc.explanation or exc)) from exc
        try:
            container.start()
        except docker.errors.APIError as exc:
            with contextlib.suppress(Exception):
                container.remove(force=True)
            raise StartFailed(str(exc.explanation or exc)) from exc
        return DockerContainer(container)

    def close(self) -> None:
        for container in self.client.containers.list(
            all=True, filters={"label": f"atom-sim={self.label}"}, ignore_removed=True
        ):
            with contextlib.suppress(Exception):
                container.remove(force=True)


# -- processes ------------------------------------------------------------------------------------


class ProcessContainer:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path, group: Path | None, runtime: ProcessRuntime):
        self.proc = proc
        self.id = f"process://{proc.pid}"
        self.started_at = stamp()
        self._log = log
        self._group = group
        self._runtime = runtime

    def wait(self) -> Exit:
        code = self.proc.wait()
        code = 128 - code if code < 0 else code  # killed by a signal: 128 + its number, as a runtime says
        cgroups = self._runtime.cgroups
        oom = bool(self._group and cgroups is not None and cgroups.oom_killed(self._group))
        return Exit(code, _reason(code, oom), self.started_at, stamp())

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def logs(self) -> bytes:
        try:
            return self._log.read_bytes()
        except OSError:
            return b""

    def stop(self, grace: float) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=max(grace, 0))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def remove(self) -> None:
        if self.proc.poll() is None:
            self.stop(0)
        if self._group is not None and self._runtime.cgroups is not None:
            self._runtime.cgroups.remove(self._group)


class ProcessRuntime:
    """The container's command as a local process: each image the simulator knows maps to an
    entrypoint; any other image is missing (ErrImagePull). Mount paths are rewritten to their
    host directories in the command, args, env and working directory."""

    kind = "process"

    def __init__(self, images: dict[str, list[str]], root: Path, base_env: dict[str, str] | None = None):
        from control.dispatch.local_limits import MemoryCgroups

        self.images = images
        self.root = root
        self.base_env = base_env or {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        self.cgroups: Any = MemoryCgroups()
        if not self.cgroups.available:
            self.cgroups = None
        self._started: list[ProcessContainer] = []
        self._lock = threading.Lock()

    def has_image(self, image: str) -> bool:
        return image in self.images

    @staticmethod
    def _translate(value: str, mounts: list[Mount]) -> str:
        for m in sorted(mounts, key=lambda m: -len(m.path)):
            if value == m.path or value.startswith(m.path.rstrip("/") + "/"):
                return m.host + value[len(m.path.rstrip("/")) :]
        return value

    def start(self, spec: ContainerSpec) -> Container:
        from control.dispatch.local_limits import Grant, limited

        mounts = spec.mounts
        argv = [self._translate(a, mounts) for a in (spec.command or self.images[spec.image]) + spec.args]
        env = {**self.base_env, **{k: self._translate(v, mounts) for k, v in spec.env.items()}}
        env.setdefault("HOME", str(self.root))
        cwd = self._translate(spec.working_dir, mounts) if spec.working_dir else str(self.root)
        group = None
        if spec.memory_bytes and self.cgroups is not None:
            group = self.cgroups.create(spec.name, max(spec.memory_bytes // (1024 * 1024), 1))
        log = self.root / f"{spec.name}.log"
        import sys

        command = limited(argv, Grant(cgroup=group), sys.executable) if group else argv
        try:
            with log.open("wb") as out:
                proc = subprocess.Popen(  # noqa: S603 - the pod's own command
                    command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
        except OSError as exc:
            if group is not None:
                self.cgroups.remove(group)
            raise StartFailed(f'exec: "{argv[0]}": {exc.strerror or exc}') from exc
        container = ProcessContainer(proc, log, group, self)
        with self._lock:
            self._started.append(container)
        return container

    def close(self) -> None:
        with self._lock:
            started = list(self._started)
        for container in started:
            container.remove()
        if self.cgroups is not None:
            self.cgroups.close()
