"""`atom predict` against a real control app and a real V2 server that needs a token, and
`atom services key` / `public`: the CLI sends the token it uses for control, or `--key`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from control.api.app import create_app as control_app
from control.cli.main import main
from control.settings import Settings
from control.store import models as m
from runtime_agent.serve import LoadedModel, ModelServer, create_app
from runtime_agent.serve_auth import ControlAccess, Gate
from tests.control.service_rows import Tenancy, tenancy


class Doubler:
    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"y": df["x"] * 2})


class Hosts(httpx.AsyncBaseTransport):
    """Routes `http://control` to the control app and `http://serve` to the V2 server."""

    def __init__(self, **apps: object) -> None:
        self.apps = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}  # type: ignore[arg-type]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.apps[request.url.host].handle_async_request(request)


@dataclass
class World:
    t: Tenancy
    hosts: Hosts

    def atom(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        code = main(["--url", "http://control", "--space", "alpha", *args], transport=self.hosts)
        out, err = capsys.readouterr()
        return code, out, err


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = Settings(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'atom.db'}")
    app = control_app(settings, reconcile=False)
    t = tenancy(app)
    with app.state.orchestrator.store.transaction() as ses:
        svc = ses.get(m.Service, t.service_id)
        assert svc is not None
        svc.endpoint, svc.state = "http://serve", "ready"

    async def load() -> LoadedModel:
        return LoadedModel(name="tabular", version="1", operator=Doubler())

    server = ModelServer(load, name="tabular")
    asyncio.run(server.load())
    hosts = Hosts(control=app)
    gate = Gate(ControlAccess("http://control", t.service_id, t.service_token, transport=hosts), refresh_s=0)
    hosts.apps["serve"] = httpx.ASGITransport(app=create_app(server, load_on_startup=False, gate=gate))
    yield World(t, hosts)
    app.state.orchestrator.store.dispose()


ROW = '{"x": 1.5}'


def test_predict_sends_the_users_token_or_the_key(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    t = world.t
    code, out, err = world.atom(capsys, "--token", t.reader, "predict", "tabular-1", "--json", ROW, "--raw")
    assert code == 0, err
    assert json.loads(out)["outputs"][0]["data"] == [3.0]

    code, out, err = world.atom(capsys, "--token", t.stranger, "predict", str(t.service_id), "--json", ROW)
    assert code != 0  # the stranger cannot even find the service through control

    code, out, err = world.atom(capsys, "--token", t.writer, "services", "key", "tabular-1")
    assert code == 0, err
    key = out.strip()
    assert key.startswith("atomsk_") and "shown only now" in err
    # a caller without a user token: the service key alone opens the service
    code, out, err = world.atom(
        capsys, "--token", t.reader, "predict", "tabular-1", "--json", ROW, "--raw", "--key", key
    )
    assert code == 0, err

    code, out, err = world.atom(
        capsys, "--token", t.reader, "predict", "tabular-1", "--json", ROW, "--key", "atomsk_wrong"
    )
    assert code != 0 and "401" in err and "--key" in err

    code, out, err = world.atom(capsys, "--token", t.reader, "services")
    assert code == 0 and "key set" in out and key not in out + err


def test_public_on_and_off(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    t = world.t
    code, _, err = world.atom(capsys, "--token", t.writer, "services", "public", "tabular-1", "on")
    assert code == 0, err
    code, out, err = world.atom(capsys, "--token", t.reader, "services")
    assert "public" in out
    hosts = world.hosts

    async def anonymous() -> int:
        async with httpx.AsyncClient(transport=hosts) as http:
            resp = await http.post(
                "http://serve/v2/models/tabular/infer",
                json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
            )
            return resp.status_code

    assert asyncio.run(anonymous()) == 200
    code, _, err = world.atom(capsys, "--token", t.writer, "services", "public", "tabular-1", "off")
    assert code == 0, err
    assert asyncio.run(anonymous()) == 401
    code, _, err = world.atom(capsys, "--token", t.writer, "services", "public", "tabular-1")
    assert code != 0 and "on or off" in err
