"""Mirroring: the caller gets only the primary's answer; the candidate's answers are compared and recorded."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.runtime_agent.front.conftest import (
    ADMIN,
    Backend,
    Servers,
    auth,
    free_port,
    infer_body,
    start_front,
    table,
)


def candidate_f(x: float) -> float:
    return 3 * x if x % 5 == 1 else 2 * x  # differs from the primary (2x) on 1, 6, 11, 16, ...


async def mirror_settled(http: httpx.AsyncClient, mirrored: int) -> dict[str, Any]:
    """The mirror's record once `mirrored` copies were sent and none is in flight."""
    for _ in range(5000):  # each look is a real request: no sleeping
        mirror: dict[str, Any] = (await http.get(f"{ADMIN}/stats")).json()["mirror"]
        if mirror["mirrored"] >= mirrored and mirror["inFlight"] == 0:
            return mirror
    raise AssertionError(f"the mirror did not settle: {mirror}")


async def test_the_caller_gets_the_primary_answer_and_differences_are_recorded(servers: Servers) -> None:
    primary = [Backend(servers, "2", "p0"), Backend(servers, "2", "p1")]
    candidate = Backend(servers, "3", "c0", f=candidate_f, reorder=True)
    _, url = start_front(servers)
    routes = table(("2", 100, [p.url for p in primary]), ("3", 0, [candidate.url]), mirror=("3", 100))
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert (await http.put(f"{ADMIN}/routes", json=routes, headers=auth())).status_code == 200

        # the candidate hangs: the primary's answer comes back all the same
        candidate.hold()
        resp = await http.post("/v2/models/m/infer", json=infer_body(0))
        assert resp.status_code == 200 and resp.headers["x-version"] == "2"
        await asyncio.to_thread(candidate.wait_held, 1)
        assert (await http.get(f"{ADMIN}/stats")).json()["mirror"]["inFlight"] == 1
        candidate.release()

        answers = [await http.post("/v2/models/m/infer", json=infer_body(x)) for x in range(1, 20)]
        assert {a.headers["x-version"] for a in answers} == {"2"}
        assert [a.json()["outputs"][0]["data"] for a in answers] == [[2 * x] for x in range(1, 20)]
        mirror = await mirror_settled(http, 20)
        assert (mirror["version"], mirror["percent"]) == ("3", 100)
        assert (mirror["mirrored"], mirror["same"], mirror["different"]) == (20, 16, 4)
        assert (mirror["failed"], mirror["dropped"], mirror["statuses"]) == (0, 0, {"200": 20})
        assert mirror["p50Ms"] is not None and mirror["p99Ms"] >= mirror["p50Ms"]
        diffs = mirror["differences"]
        assert [d["path"] for d in diffs] == ["/v2/models/m/infer"] * 4
        assert json.loads(diffs[0]["candidateBody"])["outputs"][0]["data"] == [3]
        assert json.loads(diffs[0]["primaryBody"])["outputs"][0]["data"] == [2]
        assert (diffs[0]["primaryStatus"], diffs[0]["candidateStatus"]) == (200, 200)
        assert candidate.hits == 20 and sum(p.hits for p in primary) == 20

        # a quarter now: exactly 10 of the next 40 requests are copied; the record goes on
        routes["mirror"]["percent"] = 25
        assert (await http.put(f"{ADMIN}/routes", json=routes, headers=auth())).status_code == 200
        for x in range(40):
            assert (await http.post("/v2/models/m/infer", json=infer_body(x))).status_code == 200
        assert (await http.get("/v2/health/ready")).status_code == 200  # not an inference: not copied
        mirror = await mirror_settled(http, 30)
        assert mirror["mirrored"] == 30 and candidate.hits == 30


async def test_copies_beyond_the_limit_are_dropped_and_failures_only_counted(servers: Servers) -> None:
    primary, candidate = Backend(servers, "1", "p"), Backend(servers, "2", "c")
    _, url = start_front(servers, mirror_limit=2)
    routes = table(("1", 100, [primary.url]), ("2", 0, [candidate.url]), mirror=("2", 100))
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert (await http.put(f"{ADMIN}/routes", json=routes, headers=auth())).status_code == 200
        candidate.hold()
        answers = [await http.post("/v2/models/m/infer", json=infer_body(x)) for x in range(5)]
        assert [a.status_code for a in answers] == [200] * 5
        await asyncio.to_thread(candidate.wait_held, 2)
        mirror = (await http.get(f"{ADMIN}/stats")).json()["mirror"]
        assert (mirror["mirrored"], mirror["inFlight"], mirror["dropped"], mirror["limit"]) == (2, 2, 3, 2)
        candidate.release()
        mirror = await mirror_settled(http, 2)
        assert (mirror["same"], mirror["dropped"]) == (2, 3)

        # a candidate that cannot be reached: the caller never notices
        dead = f"http://127.0.0.1:{free_port()}"
        routes["versions"][1]["replicas"] = [dead]
        routes["versions"][1]["version"] = routes["mirror"]["version"] = "9"
        assert (await http.put(f"{ADMIN}/routes", json=routes, headers=auth())).status_code == 200
        resp = await http.post("/v2/models/m/infer", json=infer_body(1))
        assert resp.status_code == 200 and resp.json()["outputs"][0]["data"] == [2]
        mirror = await mirror_settled(http, 1)
    assert (mirror["version"], mirror["mirrored"], mirror["failed"], mirror["same"]) == ("9", 1, 1, 0)
