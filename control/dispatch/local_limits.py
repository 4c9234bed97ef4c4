"""Limits for agents run as local processes: CPU affinity, a memory cgroup, GPUs handed out one run each.

What the OS allows is used and what it does not is said once: CPU affinity always works on Linux;
memory is limited with a cgroup (v1 `memory.limit_in_bytes` or v2 `memory.max`) where control may
make one (root, or a delegated subtree), and is otherwise not enforced (`describe_resources` says
so). GPUs are exclusive: a run gets `CUDA_VISIBLE_DEVICES` with only the GPUs it was granted, and
a run asking for more GPUs than are free waits.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")


def detect_gpus() -> list[str]:
    """The NVIDIA GPUs of this host by index (`nvidia-smi -L`, else /proc/driver/nvidia/gpus)."""
    smi = shutil.which("nvidia-smi")
    if smi:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False)
            if out.returncode == 0:
                return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        return [str(i) for i in range(len(list(proc.iterdir())))]
    return []


def parse_gpus(value: str | None) -> list[str]:
    """`ATOM_LOCAL_GPUS`: a count (`2`), a list of device ids (`0,2`), empty for none, None to detect."""
    if value is None:
        return detect_gpus()
    value = value.strip()
    if not value:
        return []
    if value.isdigit():
        return [str(i) for i in range(int(value))]
    return [part.strip() for part in value.split(",") if part.strip()]


class MemoryCgroups:
    """Per-agent memory cgroups under this process's own cgroup (v1 or v2), when they can be made."""

    def __init__(self, root: Path = CGROUP_ROOT) -> None:
        self.root = root
        self.base: Path | None = None
        self.version = 0
        self._probe()

    @property
    def available(self) -> bool:
        return self.base is not None

    def _own_path(self, controller: str) -> str:
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/cgroup").read_text().splitlines():
                _, controllers, path = line.split(":", 2)
                if controller in controllers.split(",") or (controller == "" and controllers == ""):
                    return path.lstrip("/")
        return ""

    def _probe(self) -> None:
        v1 = self.root / "memory"
        if (v1 / "memory.limit_in_bytes").exists():
            for parent in (v1 / self._own_path("memory"), v1):
                if self._try(parent / f"atom-{os.getpid()}", 1):
                    return
        if (self.root / "cgroup.controllers").exists():
            own = self.root / self._own_path("")
            with contextlib.suppress(OSError):
                if "memory" in (own / "cgroup.subtree_control").read_text().split():
                    self._try(own / f"atom-{os.getpid()}", 2)

    def _try(self, base: Path, version: int) -> bool:
        try:
            base.mkdir(exist_ok=True)
        except OSError:
            return False
        self.base, self.version = base, version
        logger.info("local adapter: memory limits through cgroup v%d at %s", version, base)
        return True

    def create(self, name: str, mib: int) -> Path | None:
        """A new cgroup `name` limited to `mib` MiB (its agent joins it itself); None where impossible."""
        if self.base is None or mib <= 0:
            return None
        group = self.base / name
        try:
            group.mkdir(exist_ok=True)
            limit_file = "memory.limit_in_bytes" if self.version == 1 else "memory.max"
            (group / limit_file).write_text(str(mib * 1024 * 1024))
            if self.version == 2:
                with contextlib.suppress(OSError):
                    (group / "memory.swap.max").write_text("0")
        except OSError as exc:
            logger.warning("local adapter: no memory limit for %s: %s", name, exc)
            self.remove(group)
            return None
        return group

    def oom_killed(self, group: Path) -> bool:
        """Whether the kernel killed a process of `group` for memory."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        with contextlib.suppress(OSError):
            for line in (group / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                    return True
        if self.version == 1:
            with contextlib.suppress(OSError, ValueError):
                return int((group / "memory.failcnt").read_text().strip()) > 0 and not _has_procs(group)
        return False

    def remove(self, group: Path) -> None:
        with contextlib.suppress(OSError):
            group.rmdir()

    def close(self) -> None:
        if self.base is not None:
            for child in self.base.iterdir() if self.base.is_dir() else ():
                if child.is_dir():
                    self.remove(child)
            self.remove(self.base)


def _has_procs(group: Path) -> bool:
    with contextlib.suppress(OSError):
        return bool((group / "cgroup.procs").read_text().strip())
    return False


@dataclass
class Grant:
    """What one local agent holds: GPU ids, CPU cores, its memory cgroup."""

    gpus: list[str] = field(default_factory=list)
    cpus: list[int] = field(default_factory=list)
    memory_mib: int = 0
    cgroup: Path | None = None


class LocalInventory:
    """The host's CPUs and GPUs, and which agent holds which (GPUs exclusively, CPUs spread)."""

    def __init__(self, gpus: list[str], cpus: int | None = None) -> None:
        self.gpus = gpus
        self.cpus = cpus or os.cpu_count() or 1
        self.grants: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def free_gpus(self) -> list[str]:
        held = {g for grant in self.grants.values() for g in grant.gpus}
        return [g for g in self.gpus if g not in held]

    def reserve(self, key: str, *, gpus: int, cpus: float) -> Grant | None:
        """Set GPUs and CPU cores aside for `key`; None when not enough GPUs are free now."""
        with self._lock:
            free = self.free_gpus()
            if gpus > len(free):
                return None
            grant = Grant(gpus=free[:gpus], cpus=self._pick_cpus(cpus))
            self.grants[key] = grant
            return grant

    def _pick_cpus(self, cpus: float) -> list[int]:
        """The least-used cores (none: no affinity when the run may use every core)."""
        want = math.ceil(cpus)
        if want <= 0 or want >= self.cpus:
            return []
        load = dict.fromkeys(range(self.cpus), 0)
        for grant in self.grants.values():
            for core in grant.cpus:
                load[core] = load.get(core, 0) + 1
        return sorted(sorted(load, key=lambda core: (load[core], core))[:want])

    def rekey(self, old: str, new: str) -> None:
        with self._lock:
            if old in self.grants:
                self.grants[new] = self.grants.pop(old)

    def adopt(self, key: str, grant: Grant) -> None:
        with self._lock:
            self.grants[key] = grant

    def release(self, key: str) -> Grant | None:
        with self._lock:
            return self.grants.pop(key, None)


LIMITS_SHIM = (
    "import os, sys\n"
    "cpus, group, argv = sys.argv[1], sys.argv[2], sys.argv[3:]\n"
    "if cpus:\n"
    "    os.sched_setaffinity(0, [int(c) for c in cpus.split(',')])\n"
    "if group:\n"
    "    with open(os.path.join(group, 'cgroup.procs'), 'w') as procs:\n"
    "        procs.write(str(os.getpid()))\n"
    "os.execvp(argv[0], argv)\n"
)
"""Runs first in the agent's process: takes its cores and joins its cgroup, then becomes the agent
(exec keeps the pid), so nothing the agent starts escapes its limits."""


def limited(command: list[str], grant: Grant, python: str) -> list[str]:
    """`command` behind the limits shim when the grant limits anything, else as it is."""
    if not grant.cpus and grant.cgroup is None:
        return command
    cpus = ",".join(str(c) for c in grant.cpus)
    return [python, "-c", LIMITS_SHIM, cpus, str(grant.cgroup or ""), *command]


__all__ = ["Grant", "LocalInventory", "MemoryCgroups", "detect_gpus", "limited", "parse_gpus"]
