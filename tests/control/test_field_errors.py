"""422 answers name the fields to blame (`errors: [{field, msg}]`) and the client fills `.fields`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from control.client import AsyncControlClient
from control.errors import ControlAPIError, InvalidSpec
from tests.control.factory import LAMP, SP, define_node, ok


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncControlClient]:
    async with AsyncControlClient("http://control", transport=httpx.ASGITransport(app=app)) as c:
        await c.ensure_space("default")
        yield c


async def _refused(call) -> ControlAPIError:  # type: ignore[no-untyped-def]
    with pytest.raises(ControlAPIError) as err:
        await call
    assert err.value.status_code == 422, err.value
    return err.value


async def test_connection_port_out_of_range(client: AsyncControlClient) -> None:
    body = {"connectName": "db", "connectType": "MYSQL", "connectPort": 70000}
    err = await _refused(client.create("default", "connections", body))
    assert set(err.fields) == {"connectPort"} and "65535" in err.fields["connectPort"]
    assert "connectPort" in str(err)
    await client.create("default", "connections", {**body, "connectPort": 3306})
    patched = await _refused(client.patch("default", "connections", "db", {"connectPort": 0}))
    assert set(patched.fields) == {"connectPort"}  # the repo's own validation, camelCase too


async def test_node_name_with_capitals(client: AsyncControlClient) -> None:
    err = await _refused(client.create("default", "nodes", {"nodeName": "Train_Model"}))
    assert set(err.fields) == {"nodeName"}
    assert "not a valid Kubernetes name" in err.fields["nodeName"]
    assert not err.fields["nodeName"].startswith("Value error")


async def test_unknown_and_missing_fields(client: AsyncControlClient) -> None:
    err = await _refused(client.create("default", "connections", {"connectName": "x", "colour": "red"}))
    assert err.fields == {"colour": "unknown field"}
    err = await _refused(client.create("default", "operators", {"operatorName": "o", "moduleName": "m"}))
    assert err.fields == {"executeObject": "required"}
    await client.create("default", "service-infos", {"siName": "small"})
    err = await _refused(client.patch("default", "service-infos", "small", {"siGpus": 1, "siCpu": -1}))
    assert err.fields == {"siGpus": "unknown field"}


async def test_several_fields_and_nesting(api: httpx.AsyncClient) -> None:
    await ok(await api.put(SP, json={"spaceName": "default"}))
    resp = await api.post(
        f"{SP}/sources", json={"sourceName": "", "operatorReadNum": -1, "connectionName": "c"}
    )
    assert resp.status_code == 422
    body = resp.json()
    assert {e["field"] for e in body["errors"]} == {"sourceName", "operatorReadNum"}
    assert body["msg"].startswith("invalid request: ")
    payload = {
        "sourceAndConnects": [{"connectTo": {"connectType": "NOPE"}, "sourceTo": {}}],
        "operatorTo": {},
    }
    nested = await api.post("/operator/create_operators", json=payload)
    fields = {e["field"] for e in nested.json()["errors"]}
    assert "sourceAndConnects.0.connectTo.connectType" in fields
    assert "operatorTo.moduleName" in fields


async def test_references_and_dag_checks_name_their_field(
    api: httpx.AsyncClient, client: AsyncControlClient, tmp_path
) -> None:
    a = await define_node(api, data_dir=str(tmp_path), node="step-a", finish=False)
    b = await define_node(api, data_dir=str(tmp_path), node="step-b", finish=False)
    src = list(a["sources"].values())
    rel = {"nodeId": a["node"]["id"], "operatorId": a["operator"]["id"], "dataSourceIds": src}
    await ok(await api.post(f"{LAMP}/node/createNodeRelation", json={**rel, "nextNodeId": b["node"]["id"]}))

    async def relation(body: dict) -> dict[str, str]:
        resp = await api.post(f"{LAMP}/node/createNodeRelation", json=body)
        assert resp.status_code == 422, resp.text
        return {e["field"]: e["msg"] for e in resp.json()["errors"]}

    cycle = await relation({**rel, "nodeId": b["node"]["id"], "nextNodeId": a["node"]["id"]})
    assert list(cycle) == ["nextNodeId"] and "cycle" in cycle["nextNodeId"]
    assert list(await relation({**rel, "operatorId": 999})) == ["operatorId"]
    assert list(await relation({**rel, "nodeId": 999})) == ["nodeId"]
    assert list(await relation({**rel, "modelID": 999})) == ["modelId"]
    assert list(await relation({**rel, "dataSourceIds": [999]})) == ["dataSourceIds"]
    assert list(await relation({**rel, "serviceInfoId": 999})) == ["serviceInfoId"]
    sink_only = [a["sources"]["predictions"]]
    assert list(await relation({**rel, "dataSourceIds": sink_only})) == ["dataSourceIds"]

    err = await _refused(client.create("default", "sources", {"sourceName": "s", "connectionName": "nope"}))
    assert list(err.fields) == ["connectionName"] and "nope" in err.fields["connectionName"]
    err = await _refused(client.create("default", "sources", {"sourceName": "s"}))
    assert list(err.fields) == ["connectionName"]
    bare = await client.put("default", "nodes", "lonely", {"nodeName": "lonely"})
    err = await _refused(client.patch("default", "nodes", bare["id"], {"nodeStatus": "EDIT_FINISH"}))
    assert list(err.fields) == ["nodeStatus"]
    err = await _refused(client.put("default", "nodes", "other", {"nodeName": "lonely"}))
    assert list(err.fields) == ["nodeName"]
    err = await _refused(client.create("default", "exams", {"examName": "e", "experimentId": 42}))
    assert list(err.fields) == ["experimentId"]


async def test_other_errors_carry_no_fields(api: httpx.AsyncClient, client: AsyncControlClient) -> None:
    resp = await api.get("/api/v1/runs/12345")
    assert resp.status_code == 404 and resp.json() == {"msg": "run 12345 does not exist"}
    with pytest.raises(ControlAPIError) as err:
        await client.get_run(12345)
    assert err.value.status_code == 404 and err.value.fields == {}


def test_invalid_spec_keeps_its_fields_across_pickling() -> None:
    import pickle

    exc = InvalidSpec("nextNodeId 3 would make a cycle", field="nextNodeId", field_msg="would make a cycle")
    again = pickle.loads(pickle.dumps(exc))
    assert again.errors == [{"field": "nextNodeId", "msg": "would make a cycle"}] and str(again) == str(exc)
    api_err = pickle.loads(pickle.dumps(ControlAPIError("bad", status_code=422, fields={"a": "b"})))
    assert api_err.fields == {"a": "b"} and api_err.status_code == 422
