"""`atom tui` as a user starts it: from the `atom` command, in a real pseudo-terminal, against a
remote control URL or an embedded control server."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from control.cli.main import main
from control.deploy import free_port
from tests.e2e.conftest import LiveControl

ATOM = str(Path(sys.executable).with_name("atom"))


def test_atom_lists_the_tui_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "tui" in capsys.readouterr().out


def test_without_a_terminal_it_says_how_to_get_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tui", "--url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "needs an interactive terminal" in err and "ssh -t" in err


def run_in_pty(
    args: list[str], env: dict[str, str], *, expect: bytes, timeout: float = 60
) -> tuple[int, bytes]:
    """Run `atom ...` on a pseudo-terminal until `expect` is drawn, press ctrl+q; exit code and output."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become `atom tui` on the terminal
        os.execve(ATOM, [ATOM, *args], env)
    output = b""
    deadline = time.monotonic() + timeout
    sent = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            if not sent and expect in output:
                os.write(fd, b"\x11")  # ctrl+q
                sent = True
        if not sent:
            os.kill(pid, signal.SIGKILL)
        for _ in range(100):  # up to 10 s for the app to restore the terminal and exit
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), output
            time.sleep(0.1)
        return -1, output
    finally:
        os.close(fd)
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)


def tui_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATOM_")}
    env.update(TERM="xterm-256color", COLUMNS="100", LINES="30", ATOM_HOME=str(home), **extra)
    return env


@pytest.mark.e2e
def test_atom_tui_runs_against_a_remote_control(live: LiveControl, tmp_path: Path) -> None:
    code, out = run_in_pty(["tui", "--url", live.url], tui_env(tmp_path / "client"), expect=b"Atom")
    assert code == 0, out[-2000:]
    assert (tmp_path / "client" / "logs" / "tui.log").exists()


@pytest.mark.e2e
def test_atom_tui_starts_an_embedded_control(tmp_path: Path) -> None:
    env = tui_env(tmp_path / "home", ATOM_PORT=str(free_port()))
    code, out = run_in_pty(["tui"], env, expect=b"embedded")
    assert code == 0, out[-2000:]
    assert (tmp_path / "home" / "atom.db").exists()


def test_tui_package_import_is_light() -> None:
    """`import tui` must not load Textual (nor any server-side package)."""
    code = (
        "import sys, tui; bad = [m for m in ('textual', 'sqlalchemy', 'fastapi') if m in sys.modules];"
        "print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
