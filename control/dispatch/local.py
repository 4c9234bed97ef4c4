"""The local adapter (COMMAND pattern): each agent is a subprocess of control, in its own session.

External ids are `pid:<pid>:<start ticks>`, so a pid reused after a control restart is not taken
for the agent. Children of this control are reaped through their Popen; agents left by an earlier
control are watched through /proc. Resources are honoured as far as the OS allows
(`local_limits`): CPU affinity, a memory cgroup, and only the granted GPUs in CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from control.dispatch.base import Adapter, Admission, Infeasible, Observed, RunDescription, shortfall
from control.dispatch.local_limits import Grant, LocalInventory, MemoryCgroups, limited
from control.errors import DispatchFailed

logger = logging.getLogger(__name__)


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 else None


def _proc_state(pid: int) -> str | None:
    """The one-letter state in /proc/<pid>/stat (Z: a zombie), None if the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _parse(external_id: str) -> tuple[int, str | None]:
    _, pid, ticks = (external_id.split(":") + ["", ""])[:3]
    return int(pid), ticks or None


def describe_signal(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed)" if -code == signal.SIGKILL else ""
        return f"the agent process was ended by {name}{hint}"
    return f"the agent process exited with code {code}"


class LocalAdapter(Adapter):
    """Agents as local processes.

    Args:
        gpus: this host's GPU ids (see `local_limits.parse_gpus`).
        cpus: CPU cores to hand out (None: all of this host's).
        memory_limits: limit memory with cgroups where they can be made.
    """

    name = "local"
    ships_logs = False  # its agent writes the run's log file on control's disk itself

    def __init__(self, *, gpus: list[str] | None = None, cpus: int | None = None, memory_limits: bool = True):
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._ended_seen: dict[str, Observed] = {}
        """How each child of this control ended, kept once seen (its Popen is reaped then; `_reap`
        may free its resources before the reconcile loop looks)."""
        self.inventory = LocalInventory(gpus or [], cpus)
        self.cgroups = MemoryCgroups() if memory_limits else None

    # -- admission ------------------------------------------------------------------------------

    async def _admit(self, desc: RunDescription) -> Admission:
        await self._reap()
        req = desc.resources
        where = "this host (local adapter)"
        if req.total_gpu > len(self.inventory.gpus):
            hint = (
                "" if self.inventory.gpus else "; set ATOM_LOCAL_GPUS if it has GPUs nvidia-smi does not list"
            )
            raise Infeasible(shortfall("GPU", req.total_gpu, len(self.inventory.gpus), where) + hint)
        if req.total_cpu > self.inventory.cpus:
            raise Infeasible(shortfall("CPU", req.total_cpu, self.inventory.cpus, where))
        grant = self.inventory.reserve(_key(desc), gpus=req.total_gpu, cpus=req.total_cpu)
        if grant is None:
            return Admission(
                wait=shortfall("GPU", req.total_gpu, len(self.inventory.free_gpus()), "", free=True)
            )
        grant.memory_mib = req.total_memory_mib
        return Admission(grant={"gpus": grant.gpus, "cpus": grant.cpus, "memoryMib": grant.memory_mib})

    # -- start / stop / describe ----------------------------------------------------------------

    async def _start(self, desc: RunDescription, admission: Admission) -> str:
        return await asyncio.to_thread(self._start_sync, desc, admission)

    def _start_sync(self, desc: RunDescription, admission: Admission) -> str:
        key = _key(desc)
        grant = self.inventory.grants.get(key) or Grant()
        env = dict(desc.env)
        if grant.gpus or desc.resources.total_gpu == 0:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(grant.gpus)
        desc.log_path.parent.mkdir(parents=True, exist_ok=True)
        if not shutil.which(desc.command[0], path=env.get("PATH")):
            self.inventory.release(key)
            raise DispatchFailed(
                f"cannot start {desc.command[0]!r} for {desc.kind} {desc.ident}: no such executable"
            )
        if self.cgroups is not None and grant.memory_mib:
            grant.cgroup = self.cgroups.create(
                f"{desc.kind}-{desc.ident}-{uuid.uuid4().hex[:8]}", grant.memory_mib
            )
        try:
            with open(desc.log_path, "ab") as log:
                proc = subprocess.Popen(
                    limited(desc.command, grant, sys.executable),
                    env=env,
                    cwd=desc.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            self.inventory.release(key)
            if grant.cgroup is not None and self.cgroups is not None:
                self.cgroups.remove(grant.cgroup)
            raise DispatchFailed(
                f"cannot start {desc.command[0]!r} for {desc.kind} {desc.ident}: {exc.strerror or exc}"
            ) from exc
        self._procs[proc.pid] = proc
        external_id = f"pid:{proc.pid}:{_start_ticks(proc.pid) or ''}"
        self.inventory.rekey(key, external_id)
        logger.info(
            "started %s %s as pid %s (cpus %s, gpus %s, memory %s)",
            desc.kind,
            desc.ident,
            proc.pid,
            grant.cpus or "all",
            grant.gpus or "none",
            f"{grant.memory_mib} MiB" if grant.cgroup else "not limited",
        )
        return external_id

    async def _describe(self, external_id: str) -> Observed:
        if external_id in self._ended_seen:
            return self._ended_seen[external_id]
        pid, ticks = _parse(external_id)
        proc = self._procs.get(pid)
        if proc is not None:
            code = proc.poll()
            if code is None:
                return Observed(alive=True)
            self._procs.pop(pid, None)
            seen = Observed(alive=False, exit_code=code, detail=self._ended(external_id, code))
            self._ended_seen[external_id] = seen
            while len(self._ended_seen) > 10_000:
                self._ended_seen.pop(next(iter(self._ended_seen)))
            return seen
        current = _start_ticks(pid)
        if current is not None and (ticks is None or current == ticks) and _proc_state(pid) != "Z":
            return Observed(alive=True)
        return Observed(alive=False, detail="the agent process is gone (its exit status was not seen)")

    def _ended(self, external_id: str, code: int) -> str:
        grant = self.inventory.grants.get(external_id)
        if (
            code == -signal.SIGKILL
            and grant is not None
            and grant.cgroup is not None
            and self.cgroups is not None
            and self.cgroups.oom_killed(grant.cgroup)
        ):
            return f"out of memory (limit {grant.memory_mib} MiB): the agent process was killed"
        return describe_signal(code)

    async def _stop(self, external_id: str, *, grace: float) -> None:
        pid, ticks = _parse(external_id)
        if _start_ticks(pid) is None or (ticks and _start_ticks(pid) != ticks):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline:
            if not (await self._describe(external_id)).alive:
                return
            await asyncio.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        proc = self._procs.get(pid)
        if proc is not None:
            await asyncio.to_thread(proc.wait, 5)

    async def cancel(self, desc: RunDescription) -> None:
        self.inventory.release(_key(desc))

    async def _reap(self) -> None:
        """Free what agents that have ended still hold (a run that succeeded is not watched again)."""
        for key in [k for k in self.inventory.grants if k.startswith("pid:")]:
            if not (await self._describe(key)).alive:
                await self._release(key)

    async def _release(self, external_id: str) -> None:
        grant = self.inventory.release(external_id)
        if grant is not None and grant.cgroup is not None and self.cgroups is not None:
            self.cgroups.remove(grant.cgroup)

    def adopt(self, external_id: str, grant: dict[str, Any]) -> None:
        """Hold again what an agent started by an earlier control holds (from its schedule record)."""
        self.inventory.adopt(
            external_id,
            Grant(
                gpus=[str(g) for g in grant.get("gpus", [])],
                cpus=[int(c) for c in grant.get("cpus", [])],
                memory_mib=int(grant.get("memoryMib", 0)),
            ),
        )

    async def _describe_resources(self) -> dict[str, Any]:
        inv = self.inventory
        used_cores = {c for g in inv.grants.values() for c in g.cpus}
        return {
            "adapter": self.name,
            "total": {"cpu": inv.cpus, "gpu": len(inv.gpus)},
            "free": {"gpu": len(inv.free_gpus())},
            "gpus": inv.gpus,
            "pinnedCores": sorted(used_cores),
            "agents": len(inv.grants),
            "memoryLimits": f"cgroup v{self.cgroups.version}"
            if self.cgroups is not None and self.cgroups.available
            else "not enforced (no writable cgroup)",
        }

    async def aclose(self) -> None:
        if self.cgroups is not None:
            self.cgroups.close()


def _key(desc: RunDescription) -> str:
    return f"{desc.kind}:{desc.ident}"
