"""The local adapter (COMMAND pattern): each agent is a subprocess of control, in its own session.

External ids are `pid:<pid>:<start ticks>`, so a pid reused after a control restart is
not taken for the agent. Children of this control are reaped through their Popen;
agents left by an earlier control are watched through /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from control.dispatch.base import Adapter, Launch, Observed
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
    name = "local"

    def __init__(self) -> None:
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    async def start(self, launch: Launch) -> str:
        return await asyncio.to_thread(self._start, launch)

    def _start(self, launch: Launch) -> str:
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(launch.log_path, "ab") as log:
                proc = subprocess.Popen(
                    launch.argv,
                    env=launch.env,
                    cwd=launch.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            raise DispatchFailed(
                f"cannot start {launch.argv[0]!r} for {launch.kind} {launch.ident}: {exc}"
            ) from exc
        self._procs[proc.pid] = proc
        logger.info("started %s %s as pid %s", launch.kind, launch.ident, proc.pid)
        return f"pid:{proc.pid}:{_start_ticks(proc.pid) or ''}"

    async def describe(self, external_id: str) -> Observed:
        pid, ticks = _parse(external_id)
        proc = self._procs.get(pid)
        if proc is not None:
            code = proc.poll()
            if code is None:
                return Observed(alive=True)
            self._procs.pop(pid, None)
            return Observed(alive=False, exit_code=code, detail=describe_signal(code))
        current = _start_ticks(pid)
        if current is not None and (ticks is None or current == ticks) and _proc_state(pid) != "Z":
            return Observed(alive=True)
        return Observed(alive=False, detail="the agent process is gone (its exit status was not seen)")

    async def stop(self, external_id: str, *, grace: float = 10.0) -> None:
        pid, ticks = _parse(external_id)
        if _start_ticks(pid) is None or (ticks and _start_ticks(pid) != ticks):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline:
            if not (await self.describe(external_id)).alive:
                return
            await asyncio.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        proc = self._procs.get(pid)
        if proc is not None:
            await asyncio.to_thread(proc.wait, 5)

    async def describe_resources(self) -> dict[str, Any]:
        return {"cpu": os.cpu_count() or 1}
