"""A model's versions behind one name: GREY_DEPLOY's split when the new version is ready, weights,
mirroring, promote and rollback through the API; bad input refused with nothing changed. Real
store (SQLite and MariaDB); the services are rows without processes (no adapter is called)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.orm import Session

from control.store import models as m
from tests.control.test_best_version import add_service, new_model, register

API = "/api/v1/services"


def versions_of(app: FastAPI, grey: bool = True, n: int = 2, model: str = "churn") -> list[int]:
    """`n` ready versions of `model`, the newest deployed GREY_DEPLOY (or AUTO) at 10%."""
    with app.state.orchestrator.store.transaction() as ses:
        made = new_model(ses, name=model)
        ids = []
        for i in range(n):
            version = register(ses, made, 0.8 + i / 100, model_conf={"greyWeight": 10})
            if grey and i == n - 1:
                run = ses.get(m.Runtime, version.runtime_id)
                assert run is not None
                run.spec = {**run.spec, "operator": {**run.spec["operator"], "deployType": "GREY_DEPLOY"}}
            svc = add_service(ses, version)
            svc.traffic_weight = 10 if i == n - 1 else (100 if i == 0 else 0)
            ids.append(svc.id)
        return ids


def split(app: FastAPI, ids: list[int]) -> list[tuple[str, int, int]]:
    with app.state.orchestrator.store.transaction() as ses:
        return [_row(ses, i) for i in ids]


def _row(ses: Session, sid: int) -> tuple[str, int, int]:
    svc = ses.get(m.Service, sid)
    assert svc is not None
    return svc.state, svc.traffic_weight, svc.mirror_percent


async def put(api: httpx.AsyncClient, sid: int, **body: Any) -> httpx.Response:
    return await api.put(f"{API}/{sid}/traffic", json=body)


async def test_grey_split_weights_and_mirror(app: FastAPI, api: httpx.AsyncClient) -> None:
    old, new = versions_of(app)
    assert await app.state.orchestrator.settle_ready(new) == []  # grey: nothing stopped
    assert split(app, [old, new]) == [("ready", 90, 0), ("ready", 10, 0)]

    resp = await put(api, new, trafficWeight=50)
    assert resp.status_code == 200, resp.text
    assert [(v["id"], v["trafficWeight"]) for v in resp.json()] == [(old, 50), (new, 50)]

    resp = await put(api, new, mirrorPercent=25)
    assert resp.status_code == 200 and split(app, [old, new]) == [("ready", 50, 0), ("ready", 50, 25)]
    busy = await put(api, old, mirrorPercent=5)
    assert busy.status_code == 409 and "already the mirror candidate" in busy.json()["msg"]

    for body, field in (({"trafficWeight": 150}, "trafficWeight"), ({"mirrorPercent": -1}, "mirrorPercent")):
        bad = await put(api, new, **body)
        assert bad.status_code == 422 and field in bad.text, bad.text
    assert (await put(api, new)).status_code == 422
    assert split(app, [old, new]) == [("ready", 50, 0), ("ready", 50, 25)]  # nothing half-switched

    whole = await put(api, old, trafficWeight=100)
    assert whole.status_code == 200 and split(app, [old, new]) == [("ready", 100, 0), ("ready", 0, 25)]
    refused = await put(api, old, mirrorPercent=10)
    assert refused.status_code == 409 and "takes every request itself" in refused.json()["msg"]


async def test_three_versions_share_the_rest_in_proportion(app: FastAPI, api: httpx.AsyncClient) -> None:
    a, b, c = versions_of(app, n=3)
    with app.state.orchestrator.store.transaction() as ses:
        for sid, weight in ((a, 60), (b, 30), (c, 10)):
            ses.get(m.Service, sid).traffic_weight = weight  # type: ignore[union-attr]
    resp = await put(api, c, trafficWeight=33)
    assert resp.status_code == 200
    weights = [w for _, w, _ in split(app, [a, b, c])]
    assert weights == [45, 22, 33] and sum(weights) == 100


async def test_promote_and_rollback(app: FastAPI, api: httpx.AsyncClient) -> None:
    old, new = versions_of(app)
    await app.state.orchestrator.settle_ready(new)
    back = await api.post(f"{API}/{new}/rollback")
    assert back.status_code == 200 and back.json()["id"] == old and back.json()["trafficWeight"] == 100
    state, weight, _ = split(app, [new])[0]
    assert (state, weight) == ("stopped", 0)
    with app.state.orchestrator.store.transaction() as ses:
        assert ses.get(m.Service, new).reason.startswith("rolled back to serving-churn-")  # type: ignore[union-attr]

    lone = await api.post(f"{API}/{old}/rollback")
    assert lone.status_code == 409 and "no other ready version" in lone.json()["msg"]

    old2, new2 = versions_of(app, model="iris")
    await app.state.orchestrator.settle_ready(new2)
    done = await api.post(f"{API}/{new2}/promote")
    assert done.status_code == 200 and done.json()["trafficWeight"] == 100
    assert split(app, [old2, new2]) == [("stopped", 0, 0), ("ready", 100, 0)]


async def test_a_version_that_is_not_ready_is_not_promoted(app: FastAPI, api: httpx.AsyncClient) -> None:
    old, new = versions_of(app)
    with app.state.orchestrator.store.transaction() as ses:
        ses.get(m.Service, new).state = "starting"  # type: ignore[union-attr]
    resp = await api.post(f"{API}/{new}/promote")
    assert resp.status_code == 409 and "only a ready version can be promoted" in resp.json()["msg"]
    assert split(app, [old, new]) == [("ready", 100, 0), ("starting", 10, 0)]


async def test_auto_deploy_replaces(app: FastAPI) -> None:
    old, new = versions_of(app, grey=False)
    assert await app.state.orchestrator.settle_ready(new) == [old]
    assert split(app, [old, new]) == [("stopped", 0, 0), ("ready", 100, 0)]
