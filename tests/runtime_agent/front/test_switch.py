"""Table switches under load: no request fails, every answer comes from a version it could come from."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx

from tests.runtime_agent.front.conftest import ADMIN, Backend, Servers, auth, infer_body, start_front, table

CLIENTS = 32
PER_STEP = 64
"""Answers between two table switches."""


async def stats_of(http: httpx.AsyncClient) -> dict[str, Any]:
    return {v["version"]: v for v in (await http.get(f"{ADMIN}/stats")).json()["versions"]}


async def test_32_clients_see_no_failure_while_weights_move_and_a_version_goes(servers: Servers) -> None:
    a = [Backend(servers, "a", "a0"), Backend(servers, "a", "a1")]
    b = [Backend(servers, "b", "b0"), Backend(servers, "b", "b1")]
    a_urls, b_urls = [x.url for x in a], [x.url for x in b]
    steps = [
        table(("a", 100, a_urls), ("b", 0, b_urls)),
        table(("a", 50, a_urls), ("b", 50, b_urls)),
        table(("a", 0, a_urls), ("b", 100, b_urls)),
        table(("a", 100, a_urls), ("b", 0, b_urls)),
        table(("a", 100, a_urls)),  # b removed
    ]
    weighted = [{v["version"] for v in s["versions"] if v["weight"] > 0} for s in steps]
    _, url = start_front(servers)
    begun = done = 0  # index of the last table PUT begun / answered
    answered = 0
    progress = asyncio.Condition()
    stop = asyncio.Event()
    failures: list[str] = []
    per_step: list[Counter[str]] = [Counter() for _ in steps]

    async def client(http: httpx.AsyncClient, n: int) -> None:
        nonlocal answered
        while not stop.is_set():
            first = done  # every table from `first` to `last` may have routed this request
            try:
                resp = await http.post("/v2/models/m/infer", json=infer_body(n))
            except httpx.HTTPError as exc:
                failures.append(f"client {n}: {exc!r}")
                continue
            last = begun
            allowed = set().union(*weighted[first : last + 1])
            if resp.status_code != 200 or resp.json()["outputs"][0]["data"] != [2 * n]:
                failures.append(f"client {n}: {resp.status_code} {resp.text}")
            elif resp.headers["x-version"] not in allowed:
                failures.append(
                    f"client {n}: version {resp.headers['x-version']} under tables {first}-{last}"
                )
            per_step[last][resp.headers.get("x-version", "?")] += 1
            answered += 1
            async with progress:
                progress.notify_all()

    async def answers(n: int) -> None:
        goal = answered + n
        async with progress:
            await progress.wait_for(lambda: answered >= goal)

    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        resp = await http.put(f"{ADMIN}/routes", json=steps[0], headers=auth())
        assert resp.status_code == 200
        load = [asyncio.create_task(client(http, n)) for n in range(CLIENTS)]
        await answers(PER_STEP)
        for i, step in enumerate(steps[1:], start=1):
            begun = i
            resp = await http.put(f"{ADMIN}/routes", json=step, headers=auth())
            assert resp.status_code == 200, resp.text
            done = i
            await answers(PER_STEP)
        # b is out of the table: once nothing is in flight to it, its replicas may stop
        versions = await stats_of(http)
        while versions.get("b", {}).get("inFlight", 0):
            versions = await stats_of(http)
        assert "b" not in versions or (versions["b"]["inTable"], versions["b"]["weight"]) == (False, 0)
        for backend in b:
            servers.stop(backend.url)
        await answers(PER_STEP)
        stop.set()
        await asyncio.gather(*load)
        versions = await stats_of(http)

    assert failures == []
    assert set(per_step[1]) == {"a", "b"} and set(per_step[4]) == {"a"}
    assert per_step[2]["b"] > per_step[2]["a"]  # all new requests went to b; a only finished old ones
    assert versions["a"]["inFlight"] == 0 and versions["a"]["errors"] == 0
    assert versions["a"]["requests"] == sum(step["a"] for step in per_step)  # b went with its table


async def test_a_drained_version_finishes_its_requests_and_shows_them_in_flight(servers: Servers) -> None:
    old, new = Backend(servers, "1", "old"), Backend(servers, "2", "new")
    _, url = start_front(servers)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await http.put(f"{ADMIN}/routes", json=table(("1", 100, [old.url])), headers=auth())
        old.hold()
        pending = asyncio.create_task(http.post("/v2/models/m/infer", json=infer_body(3)))
        await asyncio.to_thread(old.wait_held, 1)
        resp = await http.put(
            f"{ADMIN}/routes", json=table(("1", 0, [old.url]), ("2", 100, [new.url])), headers=auth()
        )
        assert resp.status_code == 200
        assert (await http.post("/v2/models/m/infer", json=infer_body(1))).headers["x-version"] == "2"
        draining = (await stats_of(http))["1"]
        assert (draining["weight"], draining["inFlight"], draining["replicas"][0]["inFlight"]) == (0, 1, 1)

        # dropped from the table while the request is still in flight: listed until it ends
        resp = await http.put(f"{ADMIN}/routes", json=table(("2", 100, [new.url])), headers=auth())
        assert resp.status_code == 200
        gone = (await stats_of(http))["1"]
        assert (gone["inTable"], gone["weight"], gone["inFlight"]) == (False, 0, 1)
        old.release()
        answer = await pending
        assert answer.status_code == 200 and answer.headers["x-version"] == "1"
        assert answer.json()["outputs"][0]["data"] == [6]
        assert (await stats_of(http))["1"]["inFlight"] == 0
        await http.put(f"{ADMIN}/routes", json=table(("2", 100, [new.url])), headers=auth())
        assert set(await stats_of(http)) == {"2"}
