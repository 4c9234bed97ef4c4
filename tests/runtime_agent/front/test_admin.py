"""The admin API: who may write, what a refused table leaves behind, what the state file keeps."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from runtime_agent.front.proxy import Front, FrontConfig
from runtime_agent.front.state import StateError
from tests.runtime_agent.front.conftest import (
    ADMIN,
    TOKEN,
    Backend,
    Servers,
    auth,
    infer_body,
    start_front,
    table,
)


async def test_only_the_admin_token_may_write(servers: Servers) -> None:
    backend = Backend(servers, "1", "b")
    _, url = start_front(servers)
    good = table(("1", 100, [backend.url]))
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        missing = await http.put(f"{ADMIN}/routes", json=good)
        basic = await http.put(f"{ADMIN}/routes", json=good, headers={"Authorization": "Basic eDp5"})
        wrong = await http.put(f"{ADMIN}/routes", json=good, headers=auth("not-the-token"))
        assert (await http.get(f"{ADMIN}/routes")).status_code == 404  # nothing was written
        right = await http.put(f"{ADMIN}/routes", json=good, headers=auth())
        got = await http.get(f"{ADMIN}/routes")
        health = await http.get(f"{ADMIN}/healthz")
        not_here = await http.get(f"{ADMIN}/nope")
        not_so = await http.post(f"{ADMIN}/stats")
    assert (missing.status_code, basic.status_code) == (401, 401)
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 403 and wrong.json() == {"msg": "the admin token is not valid"}
    assert right.status_code == 200 and right.json() == got.json()
    assert got.json()["versions"] == [{"version": "1", "weight": 100, "replicas": [backend.url]}]
    assert health.json() == {"live": True, "routable": True, "service": "svc", "epoch": 1}
    assert not_here.status_code == 404 and "/_atom/front/routes" in not_here.json()["msg"]
    assert not_so.status_code == 405
    assert all(TOKEN not in r.text for r in (missing, basic, wrong, right, got, health, not_here))


async def test_without_a_token_writes_are_off_but_reads_work(servers: Servers) -> None:
    _, url = start_front(servers, token=None)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        resp = await http.put(f"{ADMIN}/routes", json=table(("1", 100, ["http://x:1"])), headers=auth())
        health = await http.get(f"{ADMIN}/healthz")
    assert resp.status_code == 403 and "ATOM_FRONT_TOKEN" in resp.json()["msg"]
    assert health.json()["routable"] is False


async def test_a_refused_table_changes_nothing(
    servers: Servers, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "runtime_agent.front")
    v1, v2 = Backend(servers, "1", "v1"), Backend(servers, "2", "v2")
    state = tmp_path / "front" / "routes.json"
    _, url = start_front(servers, state_path=state, service="svc")
    good = table(("1", 100, [v1.url]), ("2", 0, [v2.url]))
    bad = [
        (table(("1", 50, [v1.url]), ("2", 60, [v2.url])), "versions: the weights sum to 110, not 100"),
        (table(("1", 100, [v1.url]), ("2", 0, [v2.url]), mirror=("7", 5)), "mirror.version: '7' is not"),
        (table(("1", 100, [v1.url]), ("1", 0, [v2.url])), "versions[1].version: version '1' is listed twice"),
        ({**good, "service": "other"}, "service: this front serves 'svc', not 'other'"),
    ]
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert (await http.put(f"{ADMIN}/routes", json=good, headers=auth())).status_code == 200
        kept = state.read_bytes()
        for data, message in bad:
            resp = await http.put(f"{ADMIN}/routes", json=data, headers=auth())
            assert resp.status_code == 422 and resp.json()["msg"].startswith(message), resp.text
        resp = await http.put(f"{ADMIN}/routes", content=b"{", headers=auth())
        assert resp.status_code == 422 and "not JSON" in resp.json()["msg"]
        assert (await http.get(f"{ADMIN}/routes")).json() == json.loads(kept)
        assert (await http.post("/v2/models/m/infer", json=infer_body(1))).headers["x-version"] == "1"
        assert (await http.get(f"{ADMIN}/healthz")).json()["epoch"] == 1
    assert state.read_bytes() == kept
    assert [p.name for p in state.parent.iterdir()] == ["routes.json"]  # no temp files left
    changes = [r.getMessage() for r in caplog.records if "routing table" in r.getMessage()]
    assert changes == [
        "front svc: routing table 1 from PUT routes: versions 1=100% (1 replica), 2=0% (1 replica)"
    ]
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


async def test_a_new_front_resumes_from_the_state_file(servers: Servers, tmp_path: Path) -> None:
    backend = Backend(servers, "4", "b")
    state = tmp_path / "routes.json"
    first, url = start_front(servers, state_path=state)
    routes = table(("4", 100, [backend.url]))
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert (await http.put(f"{ADMIN}/routes", json=routes, headers=auth())).status_code == 200
    servers.stop(url)
    assert json.loads(state.read_text()) == {**routes, "mirror": None}

    # in-process, through httpx's ASGI transport: astart() reads the file, no control needed
    second = Front(FrontConfig(state_path=state))
    await second.astart()
    try:
        transport = httpx.ASGITransport(app=second)
        async with httpx.AsyncClient(transport=transport, base_url="http://front") as http:
            resp = await http.post("/v2/models/m/infer", json=infer_body(5))
            assert resp.status_code == 200 and resp.json()["outputs"][0]["data"] == [10]
            assert (await http.get(f"{ADMIN}/routes")).json()["versions"][0]["version"] == "4"
    finally:
        await second.aclose()

    state.write_text('{"service": "svc", "versions": []}')
    broken = Front(FrontConfig(state_path=state))
    with pytest.raises(StateError, match="holds no valid routing table: versions: the weights sum to 0"):
        await broken.astart()
    await broken.aclose()
