"""Limits at the API's edge: body size (413), field sizes, ids and names (422), one clear message each."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from control.settings import Settings

SP = "/api/v1/spaces/default"
BODY_LIMIT = 256 * 1024
JSON_LIMIT = 64 * 1024


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home",
        db_url=db_url,
        max_body_bytes=BODY_LIMIT,
        max_json_field_bytes=JSON_LIMIT,
        reconcile_interval=0.2,
    )


@pytest.fixture
async def space(api: httpx.AsyncClient) -> str:
    resp = await api.put(SP, json={"spaceName": "default"})
    assert resp.status_code in (200, 201), resp.text
    return SP


def operator(name: str = "op", **fields: object) -> dict[str, object]:
    return {"operatorName": name, "moduleName": "m", "executeObject": "E", **fields}


async def names(api: httpx.AsyncClient, kind: str) -> list[str]:
    resp = await api.get(f"{SP}/{kind}")
    assert resp.status_code == 200, resp.text
    return [row.get("operatorName") or row.get("connectName") or "" for row in resp.json()]


async def test_a_body_over_the_limit_is_refused_with_413_before_it_is_read(
    api: httpx.AsyncClient, space: str
) -> None:
    big = operator(operatorConf={"blob": "x" * (BODY_LIMIT + 1)})
    resp = await api.post(f"{space}/operators", json=big)
    assert resp.status_code == 413
    msg = resp.json()["msg"]
    assert "over the limit of 256.0 KiB" in msg and "ATOM_MAX_BODY_BYTES" in msg
    assert await names(api, "operators") == []


async def test_a_streamed_body_without_length_is_cut_at_the_limit(api: httpx.AsyncClient, space: str) -> None:
    """50 MB sent in chunks (no Content-Length): refused once the count passes the limit; nothing stored."""
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"operatorName": "big", "moduleName": "m", "executeObject": "E", "operatorConf": {"b": "'
        for _ in range(50):
            sent += 1024**2
            yield b"x" * 1024**2
        yield b'"}}'

    resp = await api.post(
        f"{space}/operators", content=chunks(), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 413
    assert "ATOM_MAX_BODY_BYTES" in resp.json()["msg"]
    assert await names(api, "operators") == []
    assert (await api.get("/api/v1/runs")).status_code == 200


async def test_a_json_field_over_its_limit_is_refused_naming_the_field(
    api: httpx.AsyncClient, space: str
) -> None:
    resp = await api.post(f"{space}/operators", json=operator(operatorConf={"blob": "x" * JSON_LIMIT}))
    assert resp.status_code == 422
    body = resp.json()
    assert [e["field"] for e in body["errors"]] == ["operatorConf"]
    assert "ATOM_MAX_JSON_FIELD_BYTES" in body["msg"]
    resp = await api.post(
        f"{space}/connections", json={"connectName": "c", "sourceConf": {"k": ["y" * 1000] * 100}}
    )
    assert resp.status_code == 422
    assert [e["field"] for e in resp.json()["errors"]] == ["sourceConf"]
    assert await names(api, "operators") == []
    assert await names(api, "connections") == []
    ok = await api.post(f"{space}/operators", json=operator(operatorConf={"blob": "x" * 1000}))
    assert ok.status_code == 201, ok.text


async def test_every_string_field_has_a_length_limit(api: httpx.AsyncClient, space: str) -> None:
    cases = [
        ("connections", {"connectName": "c", "connectAddr": "a" * 1025}, "connectAddr"),
        ("connections", {"connectName": "c", "connectAccount": "a" * 256}, "connectAccount"),
        (
            "sources",
            {"sourceName": "s", "connectionName": "c", "operateExecute": "é" * 40000},
            "operateExecute",
        ),
        ("operators", operator(codeVersion="v" * 65), "codeVersion"),
        ("service-infos", {"siName": "s", "siImageName": "i" * 513}, "siImageName"),
        ("models", {"modelName": "m", "modelAddress": "/" * 1025}, "modelAddress"),
    ]
    for kind, body, field in cases:
        resp = await api.post(f"{space}/{kind}", json=body)
        assert resp.status_code == 422, (kind, resp.text)
        assert field in [e["field"] for e in resp.json()["errors"]], resp.text
    resp = await api.put(SP, json={"spaceName": "default", "description": "d" * 70000})
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "description"


async def test_numbers_fit_their_columns(api: httpx.AsyncClient, space: str) -> None:
    for body, field in [
        ({"siName": "s", "siCpu": 2**31}, "siCpu"),
        ({"siName": "s", "siMemory": -1}, "siMemory"),
    ]:
        resp = await api.post(f"{space}/service-infos", json=body)
        assert resp.status_code == 422, resp.text
        assert resp.json()["errors"][0]["field"] == field
    resp = await api.post(
        f"{space}/models",
        content=b'{"modelName": "m", "modelScore": NaN}',
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "modelScore"
    resp = await api.post(
        "/lamp/atom/service/operator/node/createNodeRelation", json={"nodeId": 2**63, "operatorId": 1}
    )
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "nodeId"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/runs/9223372036854775808",
        "/api/v1/runs/0",
        "/api/v1/services/18446744073709551616",
        "/api/v1/spaces/k£a",
        "/api/v1/spaces/³",
        "/api/v1/spaces/default/nodes/x%20y",
        "/api/v1/runs?offset=9223372036854775808",
        "/api/v1/audit?offset=828985537991433781248",
        f"/api/v1/code/sha256:{'0' * 64}?runId=18446744073709551616",
    ],
)
async def test_ids_and_names_out_of_range_are_refused_with_422(
    api: httpx.AsyncClient, space: str, path: str
) -> None:
    resp = await api.get(path)
    assert resp.status_code == 422, resp.text
    assert resp.json()["msg"].startswith("invalid request: ")


async def test_the_largest_id_is_looked_up_and_missing(api: httpx.AsyncClient, space: str) -> None:
    for path in ("/api/v1/runs/9223372036854775807", "/api/v1/services/9223372036854775807"):
        resp = await api.get(path)
        assert resp.status_code == 404, resp.text


async def test_new_space_names_follow_the_kubernetes_rule(api: httpx.AsyncClient) -> None:
    for bad in ("k£a", "Bad_Name", "-x", "x" * 64):
        resp = await api.put(f"/api/v1/spaces/{bad}", json={"spaceName": "x"})
        assert resp.status_code == 422, (bad, resp.text)
        assert resp.json()["errors"][0]["field"] == "space"
    resp = await api.put("/api/v1/spaces/Bad_Name", json={"spaceName": "x"})
    assert resp.json()["msg"] == (
        "invalid request: space: 'Bad_Name' is not a valid name: use at most 63 lower-case letters, "
        "digits and '-', starting and ending with a letter or digit"
    )
    assert (await api.get("/api/v1/spaces")).json() == []


async def test_code_uploads_keep_their_own_larger_limit(api: httpx.AsyncClient) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = os.urandom(BODY_LIMIT * 2)
        info = tarfile.TarInfo("op/blob.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert len(buf.getvalue()) > BODY_LIMIT
    resp = await api.post("/api/v1/code", content=buf.getvalue())
    assert resp.status_code == 200, resp.text


async def test_the_openapi_document_lists_every_refusal(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    assert set(doc["components"]["schemas"]["Error"]["required"]) == {"msg"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    ops = [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]
    assert len(ops) > 50
    for path, method, op in ops:
        codes = set(op["responses"])
        assert "500" not in codes
        if path != "/healthz":
            assert {"401", "403"} <= codes, (method, path)
        if method in ("post", "put", "patch"):
            assert {"409", "413", "422"} <= codes, (method, path)
        for code in codes - {"200", "201", "204"}:
            schema = op["responses"][code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, code)


async def test_unreadable_bodies_and_unknown_routes_get_one_clear_line(
    api: httpx.AsyncClient, space: str
) -> None:
    json_type = {"content-type": "application/json"}
    resp = await api.post(f"{space}/operators", content=b'{"operatorName":', headers=json_type)
    assert resp.status_code == 422
    assert resp.json()["msg"] == "the request body is not valid JSON at character 16: Expecting value"
    assert resp.json()["errors"][0]["field"] == "body"
    resp = await api.post(f"{space}/operators", content=b"[" * 100_000 + b"]" * 100_000, headers=json_type)
    assert (resp.status_code, resp.json()["msg"]) == (
        400,
        "the request body nests values too deeply to be read",
    )
    resp = await api.post(f"{space}/operators", content=b'{"operatorName": "\xff"}', headers=json_type)
    assert (resp.status_code, resp.json()["msg"]) == (
        400,
        "the request body is not UTF-8 text (invalid start byte at byte 18)",
    )
    resp = await api.delete("/api/v1/runs")
    assert (resp.status_code, resp.json()["msg"]) == (
        405,
        "DELETE /api/v1/runs: method not allowed; this path takes GET",
    )
    resp = await api.get("/api/v1/nope")
    assert resp.status_code == 404
    assert resp.json()["msg"] == "no such route: GET /api/v1/nope (the API is described at /openapi.json)"


async def test_a_stop_reason_is_one_bounded_line(api: httpx.AsyncClient) -> None:
    resp = await api.post("/api/v1/runs/1/stop", json={"reason": "r" * 5000})
    assert resp.status_code == 422
    assert "at most 4096 characters" in resp.json()["msg"]
    resp = await api.post("/api/v1/runs/1/stop", json={"reason": ["not", "text"]})
    assert resp.status_code == 422
    assert (await api.post("/api/v1/runs/1/stop", json={"reason": "enough"})).status_code == 404
