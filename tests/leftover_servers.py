"""The test run fails when it leaves a serving process behind.

A serving process (`atom-runtime serve`, `python -m runtime_agent serve`, or the routing front)
started while the run went on and still alive at its end, orphaned (its parent, a test worker or
a control started by a test, is gone), was leaked by some test: it is named, killed, and the
run's exit status becomes "tests failed". Only the pytest process that runs the session (the
xdist controller, or pytest itself without xdist) checks, after every worker ended. A process
with a live parent belongs to someone still running (another pytest session on the machine).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

SERVING_COMMANDS = frozenset({"serve", "front"})
_started_after: int | None = None


def _stat(pid: int | str) -> list[str]:
    """/proc/PID/stat's fields after the command name (field 3, the state, comes first)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _start_ticks(pid: int | str) -> int:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    return int(_stat(pid)[19])


def _left_to_us(pid: int | str) -> bool:
    """Its parent is gone (it was handed to init, pid 1), or is this pytest process itself."""
    parent = int(_stat(pid)[1])
    return parent in (1, os.getpid()) or not Path(f"/proc/{parent}").exists()


def _is_serving(argv: list[str]) -> bool:
    """`... runtime_agent serve ...`, `.../atom-runtime front ...` and the like."""
    runtime = ("runtime_agent", "/atom-runtime", "runtime_agent/__main__.py")
    return any(
        (a == runtime[0] or a.endswith(runtime[1:])) and nxt in SERVING_COMMANDS
        for a, nxt in zip(argv, argv[1:], strict=False)
    )


def serving_processes(started_after: int) -> list[tuple[int, str]]:
    """(pid, command line) of serving processes started after `started_after` (clock ticks)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if not _is_serving([a for a in argv if a]) or _start_ticks(entry.name) < started_after:
                continue
            if not _left_to_us(entry.name):
                continue
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile, or not ours to read
        found.append((int(entry.name), " ".join(a for a in argv if a)))
    return found


def pytest_configure(config: pytest.Config) -> None:
    global _started_after
    if not hasattr(config, "workerinput") and Path("/proc/self/stat").exists():
        _started_after = _start_ticks("self")


@pytest.hookimpl(trylast=True)  # after xdist has shut its workers down
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _started_after is None or hasattr(session.config, "workerinput"):
        return
    left = serving_processes(_started_after)
    if not left:
        return
    for pid, _ in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"serving processes left behind by the tests (killed now): {len(left)}"]
    lines += [f"  pid {pid}: {cmd[:200]}" for pid, cmd in left]
    if reporter is not None:
        reporter.write("\n")
        for line in lines:
            reporter.write_line(line, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
