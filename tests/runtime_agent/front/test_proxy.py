"""The data plane through a real front on a real port to real backends: split, balance, retry, headers."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter

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


async def put(http: httpx.AsyncClient, data: dict[str, object]) -> None:
    resp = await http.put(f"{ADMIN}/routes", json=data, headers=auth())
    assert resp.status_code == 200, resp.text


async def test_weights_10_90_split_1000_requests_exactly_100_900(servers: Servers) -> None:
    v1 = Backend(servers, "1", "v1")
    v2a, v2b = Backend(servers, "2", "v2a"), Backend(servers, "2", "v2b")
    _, url = start_front(servers)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await put(http, table(("1", 10, [v1.url]), ("2", 90, [v2a.url, v2b.url])))
        seen: Counter[str] = Counter()
        for i in range(1000):
            resp = await http.post("/v2/models/m/infer", json=infer_body(i))
            assert resp.status_code == 200
            assert resp.json()["outputs"][0]["data"] == [2 * i]
            seen[resp.headers["x-replica"]] += 1
        stats = (await http.get(f"{ADMIN}/stats")).json()
    assert seen == {"v1": 100, "v2a": 450, "v2b": 450}
    by_version = {v["version"]: v for v in stats["versions"]}
    assert by_version["1"]["requests"] == 100 and by_version["2"]["requests"] == 900
    assert [r["requests"] for r in by_version["2"]["replicas"]] == [450, 450]
    assert by_version["2"]["errors"] == 0 and by_version["2"]["inFlight"] == 0
    assert by_version["2"]["p50Ms"] > 0 and by_version["2"]["p99Ms"] >= by_version["2"]["p50Ms"]


async def test_a_slow_replica_gets_fewer_requests(servers: Servers) -> None:
    slow, fast = Backend(servers, "1", "slow"), Backend(servers, "1", "fast")
    _, url = start_front(servers)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await put(http, table(("1", 100, [slow.url, fast.url])))
        slow.hold()
        first = asyncio.create_task(http.post("/v2/models/m/infer", json=infer_body(0)))
        await asyncio.to_thread(slow.wait_held, 1)  # the first request went to `slow` and hangs there
        answers = [await http.post("/v2/models/m/infer", json=infer_body(i)) for i in range(1, 20)]
        assert {a.headers["x-replica"] for a in answers} == {"fast"}  # slow has 1 outstanding
        stats = (await http.get(f"{ADMIN}/stats")).json()
        [version] = stats["versions"]
        assert [r["inFlight"] for r in version["replicas"]] == [1, 0] and version["inFlight"] == 1
        slow.release()
        assert (await first).headers["x-replica"] == "slow"

    # under concurrent load, a replica that keeps each request longer gets fewer of them
    slower, quick = Backend(servers, "1", "slower", delay=0.05), Backend(servers, "1", "quick")
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await put(http, table(("1", 100, [slower.url, quick.url])))

        async def client(n: int) -> list[str]:
            return [
                (await http.post("/v2/models/m/infer", json=infer_body(n))).headers["x-replica"]
                for _ in range(15)
            ]

        replicas = Counter(
            r for answers_ in await asyncio.gather(*(client(n) for n in range(8))) for r in answers_
        )
    assert replicas["slower"] < replicas["quick"] and replicas["slower"] + replicas["quick"] == 120


async def test_a_dead_replica_is_skipped_by_retrying_on_another(servers: Servers) -> None:
    live = Backend(servers, "1", "live")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    _, url = start_front(servers)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await put(http, table(("1", 100, [dead, live.url])))
        answers = [await http.post("/v2/models/m/infer", json=infer_body(i)) for i in range(10)]
        assert [a.status_code for a in answers] == [200] * 10
        assert {a.headers["x-replica"] for a in answers} == {"live"}
        [version] = (await http.get(f"{ADMIN}/stats")).json()["versions"]
        dead_view, live_view = version["replicas"]
        assert dead_view["connectErrors"] >= 1 and dead_view["errors"] == dead_view["connectErrors"]
        assert live_view["requests"] == 10 and version["errors"] == 0 and version["requests"] == 10

        other_dead = f"http://127.0.0.1:{free_port()}"
        await put(http, table(("1", 100, [dead, other_dead])))
        resp = await http.post("/v2/models/m/infer", json=infer_body(1))
    assert resp.status_code == 503
    error = resp.json()["error"]
    assert error.startswith("service svc: no replica of version 1 answered (")
    assert dead in error and other_dead in error


async def test_requests_and_answers_pass_through_unchanged(servers: Servers) -> None:
    backend = Backend(servers, "7", "only")
    _, url = start_front(servers)
    head = json.dumps(
        {"id": "bin-1", "inputs": [{"name": "raw", "datatype": "BYTES", "shape": [5]}]}
    ).encode()
    raw = bytes(range(250, 256)) + b"\x00\x01"
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert (await http.get("/v2/health/ready")).status_code == 503  # no table yet
        await put(http, table(("7", 100, [backend.url])))
        resp = await http.post(
            "/v2/models/m%20x/infer?trace=1&b=%2F",
            content=head + raw,
            headers={
                "Inference-Header-Content-Length": str(len(head)),
                "Content-Type": "application/octet-stream",
                "Authorization": "Bearer user-token",
                "X-Request-Id": "r-1",
            },
        )
        ready = await http.get("/v2/health/ready")
        meta = await http.get("/v2/models/m")
        headed = await http.head("/v2/models/m")
    assert resp.status_code == 200
    out_head_len = int(resp.headers["inference-header-content-length"])
    assert json.loads(resp.content[:out_head_len])["model_name"] == "bin-1"
    assert resp.content[out_head_len:] == raw[::-1]
    assert resp.headers["content-type"] == "application/octet-stream"
    [seen] = backend.seen
    assert seen["path"] == "/v2/models/m x/infer" and seen["query"] == "trace=1&b=%2F"
    assert hashlib.sha256(seen["body"]).digest() == hashlib.sha256(head + raw).digest()
    sent = seen["headers"]
    assert sent["inference-header-content-length"] == str(len(head))
    assert sent["authorization"] == "Bearer user-token" and sent["x-request-id"] == "r-1"
    assert sent["content-length"] == str(len(head + raw))
    assert ready.json() == {"ready": True} and ready.headers["x-replica"] == "only"
    assert meta.json() == {"name": "m", "versions": ["7"]}
    assert headed.status_code == 200 and headed.content == b""
    assert headed.headers["content-length"] == meta.headers["content-length"] == str(len(meta.content))


async def test_no_table_answers_503_in_the_v2_error_shape(servers: Servers) -> None:
    front, url = start_front(servers)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        resp = await http.post("/v2/models/m/infer", json=infer_body(1))
        stats = (await http.get(f"{ADMIN}/stats")).json()
    assert resp.status_code == 503 and resp.json() == {"error": "front: no routing table yet"}
    assert stats["unrouted"] == 1 and stats["versions"] == [] and stats["service"] is None
