"""The V2 server admits callers by the service's key, a user token of its space, or not at all
when public; it learns keys and verdicts from a real control app (over ASGI) with its service token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi import FastAPI

from control.api.app import create_app as control_app
from control.settings import Settings
from runtime_agent.serve import LoadedModel, ModelServer, create_app
from runtime_agent.serve_auth import ControlAccess, Gate
from tests.control.service_rows import Tenancy, tenancy

BODY = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}]}
INFER = "/v2/models/tabular/infer"
GUARDED = ("/v2", "/v2/models/tabular", "/v2/models/tabular/ready", "/v2/models/tabular/versions/1")


class Doubler:
    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"y": df["x"] * 2})


class Switch(httpx.AsyncBaseTransport):
    """The control app over ASGI, or (when `down`) a control that cannot be reached."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.down = False
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.down:
            raise httpx.ConnectError("control is down", request=request)
        return await self.inner.handle_async_request(request)


@dataclass
class Stack:
    control: httpx.AsyncClient
    serve: httpx.AsyncClient
    t: Tenancy
    wire: Switch

    async def infer(self, token: str | None = None, path: str = INFER) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if path == INFER:
            return await self.serve.post(path, json=BODY, headers=headers)
        return await self.serve.get(path, headers=headers)

    async def rotate(self) -> str:
        resp = await self.control.post(
            f"/api/v1/services/{self.t.service_id}/key", headers={"Authorization": f"Bearer {self.t.writer}"}
        )
        assert resp.status_code == 200, resp.text
        return str(resp.json()["key"])


@pytest.fixture
async def stack_of(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    settings = Settings(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'atom.db'}")
    app = control_app(settings, reconcile=False)
    async with app.router.lifespan_context(app):
        clients: list[httpx.AsyncClient] = []

        async def make(
            *, public: bool = False, verdict_s: float = 30.0, lookups_per_s: float = 10.0, clock: Any = None
        ) -> Stack:
            t = tenancy(app, public=public)
            wire = Switch(app)
            gate = Gate(
                ControlAccess("http://control", t.service_id, t.service_token, transport=wire),
                refresh_s=0.2,
                verdict_s=verdict_s,
                cache_size=2,
                lookups_per_s=lookups_per_s,
                **({"clock": clock} if clock is not None else {}),
            )

            async def load() -> LoadedModel:
                return LoadedModel(name="tabular", version="1", operator=Doubler())

            server = ModelServer(load, name="tabular")
            await server.load()
            serve = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(server, load_on_startup=False, gate=gate)),
                base_url="http://serve",
            )
            control = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://control")
            clients.extend((serve, control))
            return Stack(control, serve, t, wire)

        yield make
        for c in clients:
            await c.aclose()


async def until(probe: Callable[[], object], what: str, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_no_token_or_a_wrong_one_is_refused_and_health_stays_open(stack_of) -> None:  # type: ignore[no-untyped-def]
    s: Stack = await stack_of()
    none = await s.infer()
    assert none.status_code == 401 and "Authorization: Bearer" in none.json()["error"]
    assert none.headers["www-authenticate"].startswith("Bearer")
    wrong_key = await s.infer("atomsk_guess")
    assert wrong_key.status_code == 401 and "service key is not valid" in wrong_key.json()["error"]
    wrong_token = await s.infer("atom_guess")
    assert wrong_token.status_code == 401 and "token is not valid" in wrong_token.json()["error"]
    for path in GUARDED:
        assert (await s.infer(None, path)).status_code == 401, path
    for path in ("/v2/health/live", "/v2/health/ready"):
        assert (await s.serve.get(path)).status_code == 200, path


async def test_the_service_key_opens_it_and_a_rotated_key_closes_within_seconds(stack_of) -> None:  # type: ignore[no-untyped-def]
    s: Stack = await stack_of()
    old = await s.rotate()
    ok = await s.infer(old)
    assert ok.status_code == 200, ok.text
    assert ok.json()["outputs"][0]["data"] == [2.0, 4.0]
    for path in GUARDED:
        assert (await s.infer(old, path)).status_code == 200, path
    new = await s.rotate()

    async def new_opens() -> bool:  # a key the server does not know makes it ask control again
        return (await s.infer(new)).status_code == 200

    await until(new_opens, "the new key to open the service")
    assert (await s.infer(old)).status_code == 401


async def test_a_user_token_of_the_space_opens_it_and_verdicts_are_cached(stack_of) -> None:  # type: ignore[no-untyped-def]
    s: Stack = await stack_of()
    assert (await s.infer(s.t.reader)).status_code == 200  # a read-scope viewer may infer
    stranger = await s.infer(s.t.stranger)
    assert stranger.status_code == 403 and "otto" in stranger.json()["error"]
    calls = s.wire.calls
    for _ in range(5):
        assert (await s.infer(s.t.reader)).status_code == 200
        assert (await s.infer(s.t.stranger)).status_code == 403
    assert s.wire.calls - calls <= 2, "control was asked per request"  # only the access refreshes


async def test_a_running_service_keeps_answering_while_control_is_down(stack_of) -> None:  # type: ignore[no-untyped-def]
    s: Stack = await stack_of()
    key = await s.rotate()
    assert (await s.infer(key)).status_code == 200
    assert (await s.infer(s.t.reader)).status_code == 200
    s.wire.down = True
    calls = s.wire.calls

    async def refreshed_while_down() -> bool:  # the stale access is fetched again, and fails
        return (await s.infer(key)).status_code == 200 and s.wire.calls > calls

    await until(refreshed_while_down, "a failed refresh")
    assert (await s.infer(key)).status_code == 200
    assert (await s.infer(s.t.reader)).status_code == 200  # its verdict is still cached
    unknown = await s.infer(s.t.writer)
    assert unknown.status_code == 503 and "key instead" in unknown.json()["error"]
    assert (await s.infer()).status_code == 401


async def test_a_public_service_answers_without_a_token(stack_of) -> None:  # type: ignore[no-untyped-def]
    s: Stack = await stack_of(public=True)
    assert (await s.infer()).status_code == 200
    for path in GUARDED:
        assert (await s.infer(None, path)).status_code == 200, path
    closed = await s.control.patch(
        f"/api/v1/services/{s.t.service_id}",
        json={"public": False},
        headers={"Authorization": f"Bearer {s.t.writer}"},
    )
    assert closed.status_code == 200

    async def refused() -> bool:
        return (await s.infer()).status_code == 401

    await until(refused, "the service to need a token again")


async def test_guessed_tokens_cannot_flood_control(stack_of) -> None:  # type: ignore[no-untyped-def]
    now = [1000.0]
    s: Stack = await stack_of(lookups_per_s=2, clock=lambda: now[0])
    assert (await s.infer(s.t.reader)).status_code == 200  # one lookup of the two a second
    calls = s.wire.calls
    garbage = await s.infer("not-an-atom-token")
    assert garbage.status_code == 401 and "neither" in garbage.json()["error"]
    assert s.wire.calls == calls  # refused without asking control
    assert (await s.infer("atom_guess-1")).status_code == 401  # the second lookup
    busy = await s.infer("atom_guess-2")
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
    assert s.wire.calls == calls + 1
    assert (await s.infer(s.t.reader)).status_code == 200  # a cached verdict needs no lookup
    now[0] += 1.0
    assert (await s.infer("atom_guess-2")).status_code == 401
