"""Exit codes and one-line errors; where the CLI finds control (URL, local server, embedded)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from control.cli._context import UsageError, normalize_kind, parse_pairs
from control.cli._embedded import EmbeddedServer, control_url, probe
from control.cli.main import main
from control.settings import Settings
from tests.control.cli.conftest import FakeControl


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_control_is_one_line_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--url", f"http://127.0.0.1:{free_port()}", "runs"])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert err.startswith("error: control at http://127.0.0.1:")
    assert "is not reachable (ConnectError): start it with `atom server` or set ATOM_URL" in err


def test_server_error_message_is_shown_without_traceback(
    fake: FakeControl, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.on("GET", "/api/v1/runs/99", httpx.Response(404, json={"msg": "run 99 does not exist"}))
    assert main(["describe", "run", "99"], transport=fake.transport) == 1
    assert capsys.readouterr().err == "error: run 99 does not exist\n"


def test_debug_adds_the_traceback(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    fake.on("GET", "/api/v1/runs/99", httpx.Response(500, json={"msg": "database is locked"}))
    assert main(["--debug", "describe", "run", "99"], transport=fake.transport) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: database is locked\n")
    assert "Traceback" in err


def test_unexpected_errors_stay_one_line(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    fake.on("GET", "/api/v1/runs/1", httpx.Response(200, text="<html>not json</html>"))
    assert main(["describe", "run", "1"], transport=fake.transport) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unexpected JSONDecodeError")
    assert err.endswith("(--debug shows where)\n")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["get", "widgets"], "error: unknown kind 'widgets': valid kinds are connections, sources"),
        (["logs", "abc"], "error: run id must be a number, got 'abc'"),
        (["start", "node", "n", "--env", "NOEQUALS"], "error: --env 'NOEQUALS': expected KEY=VALUE"),
        (["start", "pipeline", "n"], "error: argument what: invalid choice: 'pipeline'"),
        (["runs", "--state", "done"], "error: argument --state: invalid choice: 'done'"),
        (["predict", "svc"], "error: one of the arguments --json --csv is required"),
        (["bogus"], "error: argument COMMAND: invalid choice: 'bogus'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    fake: FakeControl, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    assert main(args, transport=fake.transport) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(needle), err
    assert err.count("\n") == 1
    assert fake.requests == [] or args[0] == "start"


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "quickstart" in capsys.readouterr().out
    assert main([]) == 2


def test_global_options_work_after_the_command(fake: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    fake.on("GET", "/api/v1/spaces/team-b/nodes", [])
    assert main(["get", "nodes", "--space", "team-b"], transport=fake.transport) == 0
    assert capsys.readouterr().err == "no nodes in space 'team-b'\n"


def test_space_and_token_from_env(
    fake: FakeControl, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATOM_SPACE", "from-env")
    monkeypatch.setenv("ATOM_TOKEN", "t0ken")
    fake.on("GET", "/api/v1/spaces/from-env/operators", [])
    assert main(["get", "operators"], transport=fake.transport) == 0
    assert fake.requests[0].headers["authorization"] == "Bearer t0ken"


def test_kind_aliases_and_pairs() -> None:
    assert normalize_kind("node") == "nodes"
    assert normalize_kind("serviceInfos") == "service-infos"
    assert normalize_kind("SI") == "service-infos"
    with pytest.raises(UsageError):
        normalize_kind("pods")
    assert parse_pairs(["A=1", "B=x=y", "C="], "--env") == {"A": "1", "B": "x=y", "C": ""}


def test_the_cli_does_not_import_the_server_side() -> None:
    code = (
        "import sys\n"
        "from control.cli.main import build_parser\n"
        "build_parser()\n"
        "names = ('sqlalchemy', 'control.store', 'fastapi', 'uvicorn', 'pandas')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[3])


def test_control_url_prefers_the_given_url() -> None:
    with control_url("http://example.test:1/", "tok") as where:
        assert (where.url, where.token, where.embedded) == ("http://example.test:1", "tok", False)
    assert probe(f"http://127.0.0.1:{free_port()}") is False


@pytest.mark.timeout(120)
def test_embedded_server_serves_and_stops(tmp_path: Path) -> None:
    server = EmbeddedServer(Settings(home=tmp_path / "home"))
    server.start()
    try:
        assert server.settings.port == int(server.url.rsplit(":", 1)[1])
        assert probe(server.url)
        assert httpx.get(f"{server.url}/api/v1/spaces").json() == []
    finally:
        server.stop()
    assert not probe(server.url)


@pytest.mark.timeout(120)
def test_no_url_and_no_local_server_starts_an_embedded_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ATOM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATOM_PORT", str(free_port()))  # nothing listens there
    spec = tmp_path / "spec.yaml"
    spec.write_text("serviceInfos: [{siName: small}]\n")
    assert main(["apply", "-f", str(spec)]) == 0
    assert ["service-infos", "small", "created"] in [
        line.split() for line in capsys.readouterr().out.splitlines()
    ]
    assert (tmp_path / "home" / "atom.db").exists()
    assert main(["get", "si"]) == 0  # a second command, a second embedded server, the same store
    assert "small" in capsys.readouterr().out


def test_server_refuses_a_port_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["server", "--port", str(port)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port} (Address already in use)")
