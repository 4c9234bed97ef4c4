"""The resource API and the seed's createNodeRelation, on SQLite and MariaDB, with bad input refused."""

from __future__ import annotations

import httpx
import pytest

from tests.control.factory import LAMP, SP, define_node, ok


async def test_openapi_document_served(api: httpx.AsyncClient) -> None:
    doc = await ok(await api.get("/openapi.json"))
    assert f"{LAMP}/taskEvent/startNodeTask" in doc["paths"]
    assert "/operator/create_operators" in doc["paths"]
    assert "connectType" in str(doc["components"]["schemas"]["ConnectionIn"])


async def test_crud_roundtrip_and_password_never_returned(api: httpx.AsyncClient, tmp_path) -> None:
    await ok(await api.put(SP, json={"spaceName": "default"}))
    body = {
        "connectName": "warehouse",
        "connectType": "MYSQL",
        "connectAddr": "db.internal",
        "connectPort": 3306,
        "connectAccount": "reader",
        "connectPassword": "s3cret-Pa55",
        "connectSpace": "dw",
    }
    created = await ok(await api.post(f"{SP}/connections", json=body), 201)
    assert created["hasPassword"] is True
    assert "s3cret" not in str(created)
    listed = await ok(await api.get(f"{SP}/connections"))
    assert [c["connectName"] for c in listed] == ["warehouse"]
    assert "s3cret" not in str(listed)
    patched = await ok(await api.patch(f"{SP}/connections/warehouse", json={"connectAddr": "db2.internal"}))
    assert patched["connectAddr"] == "db2.internal" and patched["hasPassword"] is True
    dup = await api.post(f"{SP}/connections", json=body)
    assert dup.status_code == 409 and "already exists" in dup.json()["msg"]
    assert (await api.delete(f"{SP}/connections/warehouse")).status_code == 204
    assert (await api.get(f"{SP}/connections/warehouse")).status_code == 404


async def test_put_is_idempotent(api: httpx.AsyncClient) -> None:
    await ok(await api.put(SP, json={"spaceName": "default"}))
    body = {"siName": "gpu-small", "siGpu": 1, "siMemory": 4096}
    first = await api.put(f"{SP}/service-infos/gpu-small", json=body)
    second = await api.put(f"{SP}/service-infos/gpu-small", json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert len(await ok(await api.get(f"{SP}/service-infos"))) == 1


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("connections", {"connectName": "x", "connectType": "MONGO"}, "connectType"),
        (
            "connections",
            {"connectName": "x", "connectType": "FILE", "colour": "red"},
            "colour: unknown field",
        ),
        ("nodes", {"nodeName": "Bad_Name", "operatorRuntimeType": "TRAIN"}, "not a valid Kubernetes name"),
        ("operators", {"operatorName": "o", "moduleName": "m"}, "executeObject: required"),
        ("sources", {"sourceName": "s", "operateExecute": "t"}, "has no connection"),
    ],
)
async def test_bad_definitions_are_refused_with_the_field_named(
    api: httpx.AsyncClient, path: str, body: dict, needle: str
) -> None:
    await ok(await api.put(SP, json={"spaceName": "default"}))
    resp = await api.post(f"{SP}/{path}", json=body)
    assert resp.status_code == 422, resp.text
    assert needle in resp.json()["msg"]
    assert await ok(await api.get(f"{SP}/{path}")) == []  # nothing half-written


async def test_relation_cycle_and_incomplete_node_refused(api: httpx.AsyncClient, tmp_path) -> None:
    a = await define_node(api, data_dir=str(tmp_path), node="step-a", finish=False)
    b = await define_node(api, data_dir=str(tmp_path), node="step-b", finish=False)
    op_id = a["operator"]["id"]
    src = list(a["sources"].values())
    await ok(
        await api.post(
            f"{LAMP}/node/createNodeRelation",
            json={
                "nodeId": a["node"]["id"],
                "nextNodeId": b["node"]["id"],
                "operatorId": op_id,
                "dataSourceIds": src,
            },
        )
    )
    cyc = await api.post(
        f"{LAMP}/node/createNodeRelation",
        json={
            "nodeId": b["node"]["id"],
            "nextNodeId": a["node"]["id"],
            "operatorId": op_id,
            "dataSourceIds": src,
        },
    )
    assert cyc.status_code == 422 and "cycle" in cyc.json()["msg"]
    bare = await ok(await api.put(f"{SP}/nodes/lonely", json={"nodeName": "lonely"}))
    resp = await api.patch(f"{SP}/nodes/lonely", json={"nodeStatus": "EDIT_FINISH"})
    assert resp.status_code == 422 and "no relation" in resp.json()["msg"]
    assert (await ok(await api.get(f"{SP}/nodes/{bare['id']}")))["nodeStatus"] == "CREATE"


async def test_start_refuses_a_node_still_being_edited(api: httpx.AsyncClient, tmp_path) -> None:
    d = await define_node(api, data_dir=str(tmp_path), finish=False)
    resp = await api.post(f"{LAMP}/taskEvent/startNodeTask", json={"taskId": d["node"]["id"]})
    assert resp.status_code == 409 and "not EDIT_FINISH" in resp.json()["msg"]
    assert (await ok(await api.get("/api/v1/runs")))["total"] == 0


async def test_unknown_field_on_seed_path_refused(api: httpx.AsyncClient) -> None:
    resp = await api.post(f"{LAMP}/taskEvent/startNodeTask", json={"taskId": 1, "priority": 3})
    assert resp.status_code == 422 and "priority: unknown field" in resp.json()["msg"]
    missing = await api.post(f"{LAMP}/taskEvent/startNodeTask", json={"taskId": 999})
    assert missing.status_code == 404 and "node 999" in missing.json()["msg"]
