"""A grey release that steps itself by its front's figures: 10% -> 50% -> 100% (promoted) while the
new version answers well, rolled back when its error rate passes the limit; each step an audit
event. A real front process, small real V2 servers as versions, an injected clock (no waits)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from control.errors import InvalidSpec
from control.grey_steps import plan_of, step_grey_releases
from control.store import models as m
from tests.control.test_best_version import add_service, new_model, register
from tests.control.test_fronts import INFER
from tests.runtime_agent.front.conftest import Backend, Servers

STEPS = {"greySteps": [10, 50, 100], "greyStepSeconds": 60, "greyMinRequests": 5}


def failing() -> Starlette:
    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": True})

    async def infer(request: Request) -> Response:
        return JSONResponse({"error": "model exploded"}, status_code=500, headers={"x-version": "bad"})

    return Starlette(
        routes=[Route("/v2/health/ready", ready), Route("/v2/models/{name}/infer", infer, methods=["POST"])]
    )


@pytest.fixture
def servers() -> Iterator[Servers]:
    s = Servers()
    try:
        yield s
    finally:
        s.close()


def add_version(
    app: FastAPI, url: str, *, conf: dict[str, Any] | None, model: m.Model | None = None
) -> tuple[int, m.Model]:
    with app.state.orchestrator.store.transaction() as ses:
        made = model or new_model(ses)
        v = register(ses, made, 0.8, model_conf=conf or {})
        if conf is not None:
            run = ses.get(m.Runtime, v.runtime_id)
            assert run is not None
            run.spec = {**run.spec, "operator": {**run.spec["operator"], "deployType": "GREY_DEPLOY"}}
        svc = add_service(ses, v)
        svc.endpoint = url
        svc.traffic_weight = (conf or {}).get("greySteps", [100])[0] if conf is not None else 100
        return svc.id, made


def since_plus(app: FastAPI, sid: int, seconds: float) -> Any:
    with app.state.orchestrator.store.transaction() as ses:
        svc = ses.get(m.Service, sid)
        assert svc is not None and svc.weight_since is not None
        return svc.weight_since + timedelta(seconds=seconds)


def weights(app: FastAPI, *ids: int) -> list[tuple[str, int]]:
    with app.state.orchestrator.store.transaction() as ses:
        return [(ses.get(m.Service, i).state, ses.get(m.Service, i).traffic_weight) for i in ids]  # type: ignore[union-attr]


async def traffic(front: str, n: int) -> list[int]:
    async with httpx.AsyncClient(timeout=30) as http:
        return [(await http.post(f"{front}/v2/models/churn/infer", json=INFER)).status_code for _ in range(n)]


async def test_steps_up_then_promotes_and_rolls_a_bad_one_back(app: FastAPI, servers: Servers) -> None:
    orch = app.state.orchestrator
    one, model = add_version(app, Backend(servers, "1", "v1").url, conf=None)
    try:
        await orch.settle_ready(one)
        two, _ = add_version(app, Backend(servers, "2", "v2").url, conf=STEPS, model=model)
        await orch.settle_ready(two)
        assert weights(app, one, two) == [("ready", 90), ("ready", 10)]
        with orch.store.transaction() as ses:
            front = ses.scalar(select(m.ServiceFront)).endpoint  # type: ignore[union-attr]
        assert await traffic(front, 50) == [200] * 50

        assert await step_grey_releases(orch, now=since_plus(app, two, 30)) == []  # not yet
        (line,) = await step_grey_releases(orch, now=since_plus(app, two, 61))
        assert line.startswith("grey release stepped 10% -> 50% (5 requests, 0.0% errors")
        assert weights(app, one, two) == [("ready", 50), ("ready", 50)]
        assert await traffic(front, 20) == [200] * 20
        (line,) = await step_grey_releases(orch, now=since_plus(app, two, 61))
        assert line.startswith("grey release stepped 50% -> 100%")
        assert weights(app, one, two) == [("stopped", 0), ("ready", 100)]

        bad, _ = add_version(
            app, servers.serve(failing()), conf={**STEPS, "greySteps": [20, 100]}, model=model
        )
        await orch.settle_ready(bad)
        assert weights(app, two, bad) == [("ready", 80), ("ready", 20)]
        codes = await traffic(front, 50)
        assert codes.count(500) == 10 and codes.count(200) == 40  # the front hands the answers on
        (line,) = await step_grey_releases(orch, now=since_plus(app, bad, 61))
        assert line.startswith(
            "grey release rolled back at 20%: error rate above 1.0% (10 requests, 100.0% errors"
        )
        assert weights(app, two, bad) == [("ready", 100), ("stopped", 0)]
        assert await traffic(front, 10) == [200] * 10
        with orch.store.transaction() as ses:
            events = ses.scalars(select(m.AuditEvent).where(m.AuditEvent.actor == "control")).all()
            assert [(e.action, e.detail["before"], e.detail["after"]) for e in events] == [
                ("grey-step", 10, 50),
                ("grey-step", 50, 100),
                ("grey-rollback", 20, 0),
            ]
    finally:
        for sid in (one,):
            await orch.stop_service(sid)
        with orch.store.transaction() as ses:
            live = [s.id for s in ses.scalars(select(m.Service).where(m.Service.state == "ready"))]
        for sid in live:
            await orch.stop_service(sid)  # the last one stops the front


@pytest.mark.parametrize(
    "conf",
    [
        {"greySteps": [50, 10]},
        {"greySteps": [0, 100]},
        {"greySteps": "10,50"},
        {"greySteps": [10, 100], "greyMaxErrorRate": 2},
        {"greySteps": [10, 100], "greyStepSeconds": "soon"},
    ],
)
def test_a_malformed_plan_is_refused(conf: dict[str, Any]) -> None:
    with pytest.raises(InvalidSpec, match="modelConf"):
        plan_of(conf)


def test_no_steps_means_by_hand() -> None:
    assert plan_of({}) is None and plan_of({"greyWeight": 10}) is None
