"""`GET /api/v1/adapters`: each dispatch target, the patterns it runs and what it has; nothing started."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from control.api.app import create_app
from control.settings import Settings
from tests.control.factory import ok


async def test_adapters_show_patterns_and_resources_without_starting_ray(
    api: httpx.AsyncClient, app: Any
) -> None:
    listed = {a["name"]: a for a in await ok(await api.get("/api/v1/adapters"))}
    assert listed["local"]["patterns"] == ["COMMAND"]
    assert listed["local"]["resources"]["total"] == {"cpu": os.cpu_count(), "gpu": 0}
    assert listed["ray"]["patterns"] == ["RAY"] and listed["ray"]["resources"] == {}
    assert "starts the first time a run needs Ray" in listed["ray"]["note"]
    assert not app.state.orchestrator.adapters["ray"].head.running


@pytest.mark.ray
async def test_an_external_ray_cluster_reports_its_resources(tmp_path: Path, ray_cluster: Any) -> None:
    settings = Settings(
        home=tmp_path, ray_address=ray_cluster.address, ray_dashboard_url=ray_cluster.dashboard_url
    )
    app = create_app(settings, reconcile=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://control") as api:
            listed = {a["name"]: a for a in await ok(await api.get("/api/v1/adapters"))}
    ray = listed["ray"]["resources"]
    assert ray["address"] == ray_cluster.address and not ray["startedByControl"]
    assert ray["total"]["cpu"] == 2 and ray["free"]["cpu"] <= 2
