"""A model's versions behind one stable endpoint: control starts the model's routing front (a real
`atom-runtime front` process) with its first ready version, pushes it the split on every change,
switches versions under load without a failed request, and stops it with the last version.

The versions are small real V2 servers (`tests.runtime_agent.front.conftest.Backend`); their rows
carry no process of their own (nothing for the adapter to stop), the front's is real.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from control.fronts import front_name, normalized
from control.store import models as m
from tests.control.test_best_version import add_service, new_model, register
from tests.runtime_agent.front.conftest import Backend, Servers

API = "/api/v1/services"
INFER = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]}


@pytest.fixture
def backends() -> Iterator[tuple[Backend, Backend]]:
    servers = Servers()
    try:
        yield Backend(servers, "1", "v1"), Backend(servers, "2", "v2")
    finally:
        servers.close()


def version(
    app: FastAPI, backend: Backend, *, grey: bool, model: m.Model | None = None
) -> tuple[int, m.Model]:
    with app.state.orchestrator.store.transaction() as ses:
        made = model or new_model(ses)
        v = register(ses, made, 0.8, model_conf={"greyWeight": 10})
        if grey:
            run = ses.get(m.Runtime, v.runtime_id)
            assert run is not None
            run.spec = {**run.spec, "operator": {**run.spec["operator"], "deployType": "GREY_DEPLOY"}}
        svc = add_service(ses, v)
        svc.endpoint, svc.traffic_weight = backend.url, 10 if grey else 100
        return svc.id, made


def front_row(app: FastAPI) -> m.ServiceFront | None:
    with app.state.orchestrator.store.transaction() as ses:
        row = ses.query(m.ServiceFront).one_or_none()
        if row is not None:
            ses.expunge(row)
        return row


async def infer(http: httpx.AsyncClient, url: str) -> str:
    resp = await http.post(f"{url}/v2/models/churn/infer", json=INFER)
    resp.raise_for_status()
    return resp.headers["x-version"]


async def test_versions_behind_one_front(app: FastAPI, api: httpx.AsyncClient, backends: Any) -> None:
    orch = app.state.orchestrator
    b1, b2 = backends
    one, model = version(app, b1, grey=False)
    try:
        await orch.settle_ready(one)
        row = front_row(app)
        assert row is not None and row.state == "ready", row and row.reason
        front = (await api.get(f"{API}/{one}")).json()["frontEndpoint"]
        assert front == row.endpoint and front.startswith("http://127.0.0.1:")

        two, _ = version(app, b2, grey=True, model=model)
        await orch.settle_ready(two)  # grey: 90 / 10
        async with httpx.AsyncClient(timeout=30) as http:
            seen = [await infer(http, front) for _ in range(100)]
            assert (seen.count("1"), seen.count("2")) == (90, 10)

            failures: list[str] = []
            done = asyncio.Event()

            async def load() -> None:
                while not done.is_set():
                    try:
                        await infer(http, front)
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))

            clients = [asyncio.create_task(load()) for _ in range(8)]
            try:
                resp = await api.put(f"{API}/{two}/traffic", json={"trafficWeight": 50})
                assert resp.status_code == 200, resp.text
                promoted = await api.post(f"{API}/{two}/promote")
                assert promoted.status_code == 200, promoted.text
            finally:
                done.set()
                await asyncio.gather(*clients)
            assert failures == []
            assert {await infer(http, front) for _ in range(20)} == {"2"}
        old = (await api.get(f"{API}/{one}")).json()
        assert (old["state"], old["reason"]) == (
            "stopped",
            f"replaced by {front_name_of(app, two)} (promoted)",
        )

        assert (await api.post(f"{API}/{two}/stop")).status_code == 200  # the last version
        row = front_row(app)
        assert row is not None and row.state == "stopped" and row.external_id is None
        assert (await api.get(f"{API}/{two}")).json()["frontEndpoint"] is None
    finally:
        row = front_row(app)
        if row is not None and row.external_id:
            with contextlib.suppress(Exception):
                await orch.adapter(row.adapter).stop(row.external_id, grace=1)


def front_name_of(app: FastAPI, service_id: int) -> str:
    with app.state.orchestrator.store.transaction() as ses:
        svc = ses.get(m.Service, service_id)
        assert svc is not None
        return svc.service_name


def test_names_and_weights() -> None:
    assert front_name("serving-churn-torch-12") == "serving-churn-torch"
    assert front_name("svc") == "svc"
    assert normalized([90, 10]) == [90, 10]
    assert normalized([90, 0]) == [100, 0]
    assert normalized([0, 0]) == [0, 100]
    assert normalized([1, 1, 1]) == [34, 33, 33] and sum(normalized([7, 5, 3])) == 100
