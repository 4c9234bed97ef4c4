"""`atom login`, `logout`, `whoami`, `users`, `tokens` and `members` against the real app.

The token lands in `$XDG_CONFIG_HOME/atom/config.yaml` with mode 0600 and serves every later
command to the same control; the first user is made by the implied local admin.
"""

from __future__ import annotations

import asyncio
import io
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from control.cli._credentials import config_path
from control.cli.main import main
from control.client import AsyncControlClient
from control.settings import Settings
from tests.control.cli.conftest import LifespanTransport
from tests.control.cli.test_errors import free_port

Atom = Callable[..., tuple[int, str, str]]
URL = "http://atom.test"


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ATOM_TOKEN", raising=False)
    monkeypatch.delenv("ATOM_API_TOKEN", raising=False)
    return tmp_path / "config"


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    def feed(text: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(text))

    return feed


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_login_keeps_a_0600_token_that_later_commands_use(
    atom: Atom, stdin: Callable[[str], None], control_settings: Settings
) -> None:
    code, out, err = atom("whoami")
    assert code == 0 and "local-admin" in out and "no login needed" in out

    stdin("alice-password\n")
    code, out, err = atom("users", "create", "alice", "--admin", "--password-stdin")
    assert (code, out.strip()) == (0, "user alice created (site admin)")
    assert "`atom login --user alice`" in err

    code, out, err = atom("whoami")
    assert code == 1 and "a token is required: run `atom login`" in err

    stdin("not-her-password\n")
    code, out, err = atom("login", "--user", "alice", "--password-stdin")
    assert code == 1 and "wrong user name or password" in err
    assert not config_path().exists()

    stdin("alice-password\n")
    code, out, err = atom("login", "--user", "alice", "--password-stdin")
    assert code == 0 and f"logged in to {URL} as alice" in out
    path = config_path()
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    stored = yaml.safe_load(path.read_text())["credentials"][URL]
    assert stored["userName"] == "alice" and stored["token"].startswith("atom_")
    assert "alice-password" not in path.read_text()

    code, out, err = atom("whoami")
    assert code == 0 and "alice (site admin)" in out and "scope admin" in out

    path.chmod(0o644)  # someone widened it: the next command narrows it back
    stdin("bob-password-1\n")
    code, out, err = atom("users", "create", "bob", "--password-stdin")
    assert code == 0 and mode(path) == 0o600
    code, out, err = atom("users", "list")
    rows = [line.split() for line in out.splitlines()]
    assert code == 0 and rows[0] == ["NAME", "ADMIN", "STATE", "CREATED"]
    assert rows[1][:3] == ["alice", "yes", "ACTIVE"] and rows[2][:2] == ["bob", "ACTIVE"]

    # members of a space
    async def make_space() -> None:
        async with AsyncControlClient(
            URL, token=stored["token"], transport=LifespanTransport(control_settings)
        ) as client:
            await client.ensure_space("lab")

    asyncio.run(make_space())
    assert atom("--space", "lab", "members", "set", "bob", "viewer")[:2] == (
        0,
        "bob is viewer in space 'lab'\n",
    )
    code, out, err = atom("--space", "lab", "members", "list")
    assert code == 0 and [line.split()[:2] for line in out.splitlines()[1:]] == [
        ["alice", "owner"],  # who made the space
        ["bob", "viewer"],
    ]
    assert atom("--space", "lab", "members", "remove", "bob")[0] == 0
    assert "bob" not in atom("--space", "lab", "members", "list")[1]
    code, out, err = atom("--space", "lab", "members", "set", "bob")
    assert code == 2 and "needs a role" in err

    # personal tokens: shown once, listed without secrets, revoked
    code, out, err = atom("tokens", "create", "ci", "--scope", "read", "--only-space", "lab")
    assert code == 0 and "shown this once" in err
    secret = out.strip()
    assert secret.startswith("atom_") and len(out.splitlines()) == 1
    code, out, err = atom("tokens", "list")
    assert code == 0 and "ci" in out and "read" in out and "lab" in out and secret not in out
    code, out, err = atom("--token", secret, "tokens", "create", "wider", "--scope", "write")
    assert code == 1 and "scope read may not POST" in err
    code, out, err = atom("--token", secret, "whoami")
    assert code == 0 and "token 'ci': scope read, spaces: lab" in out
    assert atom("tokens", "revoke", "ci")[:2] == (0, "token 'ci' revoked\n")
    code, out, err = atom("--token", secret, "whoami")
    assert code == 1 and "token 'ci' was revoked" in err
    assert atom("users", "disable", "bob")[:2] == (0, "user bob is disabled\n")

    # logout revokes the stored token and forgets it
    code, out, err = atom("logout")
    assert code == 0 and "token revoked" in out
    assert URL not in (yaml.safe_load(path.read_text())["credentials"] or {})
    code, out, err = atom("--token", stored["token"], "whoami")
    assert code == 1 and "was revoked" in err
    assert atom("logout")[0] == 0


def test_login_again_replaces_and_revokes_the_old_token(atom: Atom, stdin: Callable[[str], None]) -> None:
    stdin("alice-password\n")
    assert atom("users", "create", "alice", "--admin", "--password-stdin")[0] == 0
    stdin("alice-password\n")
    assert atom("login", "--user", "alice", "--password-stdin")[0] == 0
    first = yaml.safe_load(config_path().read_text())["credentials"][URL]["token"]
    stdin("alice-password\n")
    assert atom("login", "--user", "alice", "--password-stdin")[0] == 0
    second = yaml.safe_load(config_path().read_text())["credentials"][URL]["token"]
    assert second != first
    code, out, err = atom("--token", first, "whoami")
    assert code == 1 and "was revoked" in err
    code, out, err = atom("tokens", "list")
    states = [line.split()[-1] for line in out.splitlines()[1:]]
    assert code == 0 and sorted(states) == ["active", "revoked"]


def test_passwd_changes_ones_own_password_with_the_current_one(
    atom: Atom, stdin: Callable[[str], None]
) -> None:
    stdin("alice-password\n")
    assert atom("users", "create", "alice", "--admin", "--password-stdin")[0] == 0
    stdin("alice-password\n")
    assert atom("login", "--user", "alice", "--password-stdin")[0] == 0
    stdin("not-her-password\nnew-alice-password\n")
    code, out, err = atom("users", "passwd", "--password-stdin")
    assert code == 1 and "alice-password" not in out + err
    stdin("alice-password\nnew-alice-password\n")
    code, out, err = atom("users", "passwd", "--password-stdin")
    assert code == 0 and "password of alice changed" in out, err
    stdin("alice-password\n")
    assert atom("login", "--user", "alice", "--password-stdin")[0] == 1  # the old one no longer works
    stdin("new-alice-password\n")
    assert atom("login", "--user", "alice", "--password-stdin")[0] == 0


@pytest.mark.timeout(120)
def test_embedded_control_uses_the_login_of_the_local_port(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stdin: Callable[[str], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ATOM_HOME", str(tmp_path / "home"))
    port = free_port()  # nothing listens there: each command embeds its own server
    monkeypatch.setenv("ATOM_PORT", str(port))
    stdin("alice-password\n")
    assert main(["users", "create", "alice", "--admin", "--password-stdin"]) == 0
    stdin("alice-password\n")
    assert main(["login", "--user", "alice", "--password-stdin"]) == 0
    assert f"logged in to http://127.0.0.1:{port} as alice" in capsys.readouterr().out
    assert main(["whoami"]) == 0
    assert "alice (site admin)" in capsys.readouterr().out
