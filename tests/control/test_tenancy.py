"""Spaces are tenants: a user of space A sees nothing of space B (by id, by name, by list, by log
offset, by the seed paths), roles and token scopes bound what they may change, and agent and
service tokens open only their own run or service. Real app over ASGI, on SQLite and MariaDB."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from control import users
from control.access import Role, Scope
from control.secrets import token_hash
from control.store import models as m
from tests.control.factory import ok

V1 = "/api/v1"
LAMP = "/lamp/atom/service/operator"
MISSING_RUN = MISSING_SERVICE = MISSING_NODE = 987654


@dataclass
class Tenant:
    space: str
    space_id: int
    node_id: int
    run_id: int
    run_token: str
    service_id: int
    service_token: str


@dataclass
class World:
    tokens: dict[str, str]
    a: Tenant
    b: Tenant


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def same_404(
    hidden: httpx.Response, missing: httpx.Response, hidden_ref: object, missing_ref: object
) -> None:
    """`hidden` (another tenant's object) answers exactly as `missing` (no such object) does."""
    assert hidden.status_code == missing.status_code == 404, (hidden.text, missing.text)
    assert hidden.json() == _swap(missing.json(), str(missing_ref), str(hidden_ref))


def _swap(body: Any, old: str, new: str) -> Any:
    if isinstance(body, dict):
        return {k: _swap(v, old, new) for k, v in body.items()}
    if isinstance(body, list):
        return [_swap(v, old, new) for v in body]
    return re.sub(rf"\b{re.escape(old)}\b", new, body) if isinstance(body, str) else body


def add_users(app: FastAPI) -> dict[str, str]:
    """alice and bob (plain users), carol and dave (to be viewer / member in a), root (site admin)."""
    secrets: dict[str, str] = {}
    with app.state.orchestrator.store.transaction() as ses:
        made = {
            n: users.create_user(ses, n, admin=n == "root") for n in ("alice", "bob", "carol", "dave", "root")
        }
        for name, user in made.items():
            secrets[name] = users.issue_token(ses, user, "cli", expires_at=None).secret
        secrets["alice-read"] = users.issue_token(
            ses, made["alice"], "ro", scope=Scope.READ, expires_at=None
        ).secret
        secrets["alice-admin"] = users.issue_token(
            ses, made["alice"], "admin", scope=Scope.ADMIN, expires_at=None
        ).secret
        secrets["root-b"] = users.issue_token(
            ses, made["root"], "b-only", scope=Scope.ADMIN, spaces=["b"], expires_at=None
        ).secret
    return secrets


async def add_tenant(api: httpx.AsyncClient, app: FastAPI, token: str, space: str, tmp: Path) -> Tenant:
    """A space made by its owner through the API, a node and a connection, plus a run and a service."""
    h = auth(token)
    sp = await ok(await api.put(f"{V1}/spaces/{space}", json={"spaceName": space}, headers=h), 201)
    conn = {"connectName": "files", "connectType": "FILE", "connectAddr": str(tmp), "connectPassword": "pw"}
    await ok(await api.put(f"{V1}/spaces/{space}/connections/files", json=conn, headers=h))
    node = await ok(
        await api.put(
            f"{V1}/spaces/{space}/nodes/train",
            json={"nodeName": "train", "operatorRuntimeType": "TRAIN"},
            headers=h,
        )
    )
    log = tmp / f"{space}.log"
    log.write_text(f"secret log line of space {space}\n" * 4)
    run_token, service_token = f"run-token-{space}", f"service-token-{space}"
    with app.state.orchestrator.store.transaction() as ses:
        run = m.Runtime(
            space_id=sp["id"],
            node_id=node["id"],
            node_name="train",
            operator_runtime_type="TRAIN",
            state="running",
            token_hash=token_hash(run_token),
            spec={"spaceId": sp["id"]},
            log_path=str(log),
        )
        ses.add(run)
        ses.flush()
        ses.add(m.RunMetric(runtime_id=run.id, step=1, name="loss", value=0.5))
        model = m.Model(space_id=sp["id"], model_name="tabular")
        ses.add(model)
        ses.flush()
        version = m.ModelVersion(
            model_id=model.id, model_version="1", model_address="file:///m", runtime_id=run.id
        )
        ses.add(version)
        ses.flush()
        svc = m.Service(
            space_id=sp["id"],
            service_name=f"tabular-{space}",
            model_id=model.id,
            model_version_id=version.id,
            runtime_id=run.id,
            serving_object="op:Serve",
            state="waiting_approval",
            token_hash=token_hash(service_token),
        )
        ses.add(svc)
        ses.flush()
        return Tenant(space, sp["id"], node["id"], run.id, run_token, svc.id, service_token)


@pytest.fixture
async def world(app: FastAPI, api: httpx.AsyncClient, tmp_path: Path) -> World:
    tokens = add_users(app)
    a = await add_tenant(api, app, tokens["alice"], "a", tmp_path)
    b = await add_tenant(api, app, tokens["bob"], "b", tmp_path)
    with app.state.orchestrator.store.transaction() as ses:
        space = ses.get(m.Space, a.space_id)
        assert space is not None
        users.set_member(ses, space, users.get_user(ses, "carol"), Role.VIEWER)
        users.set_member(ses, space, users.get_user(ses, "dave"), Role.MEMBER)
    return World(tokens, a, b)


async def test_a_user_sees_nothing_of_another_space_by_list(api: httpx.AsyncClient, world: World) -> None:
    bob, a, b = auth(world.tokens["bob"]), world.a, world.b
    spaces = await ok(await api.get(f"{V1}/spaces", headers=bob))
    assert [s["spaceName"] for s in spaces] == ["b"]
    runs = await ok(await api.get(f"{V1}/runs", headers=bob))
    assert [r["id"] for r in runs["items"]] == [b.run_id] and runs["total"] == 1
    by_q = await ok(await api.get(f"{V1}/runs", params={"q": str(a.run_id)}, headers=bob))
    assert by_q == {"items": [], "total": 0}
    services = await ok(await api.get(f"{V1}/services", headers=bob))
    assert [s["id"] for s in services] == [b.service_id]
    # the site admin (and alice, in her space) still see theirs
    everything = await ok(await api.get(f"{V1}/runs", headers=auth(world.tokens["root"])))
    assert {r["id"] for r in everything["items"]} == {a.run_id, b.run_id}
    alice_services = await ok(await api.get(f"{V1}/services", headers=auth(world.tokens["alice"])))
    assert [s["id"] for s in alice_services] == [a.service_id]


async def test_another_spaces_objects_answer_as_missing_ones(api: httpx.AsyncClient, world: World) -> None:
    bob, a = auth(world.tokens["bob"]), world.a
    for path in ("", "/spec", "/logs?offset=10", "/logs", "/metrics"):
        same_404(
            await api.get(f"{V1}/runs/{a.run_id}{path}", headers=bob),
            await api.get(f"{V1}/runs/{MISSING_RUN}{path}", headers=bob),
            a.run_id,
            MISSING_RUN,
        )
    same_404(
        await api.post(f"{V1}/runs/{a.run_id}/stop", headers=bob),
        await api.post(f"{V1}/runs/{MISSING_RUN}/stop", headers=bob),
        a.run_id,
        MISSING_RUN,
    )
    for path, method in (("", "GET"), ("/render", "GET"), ("/stop", "POST"), ("/approve", "POST")):
        same_404(
            await api.request(method, f"{V1}/services/{a.service_id}{path}", headers=bob),
            await api.request(method, f"{V1}/services/{MISSING_SERVICE}{path}", headers=bob),
            a.service_id,
            MISSING_SERVICE,
        )
    # by name: the space itself, each kind in it, the connection test, the node render
    for path in (
        "",
        "/connections",
        "/connections/files",
        f"/nodes/{a.node_id}",
        "/nodes/train",
        "/nodes/train/render",
        "/models",
    ):
        same_404(
            await api.get(f"{V1}/spaces/a{path}", headers=bob),
            await api.get(f"{V1}/spaces/zz{path}", headers=bob),
            "a",
            "zz",
        )
    # by id through one's own space
    for kind, ref in (("nodes", a.node_id), ("connections", a.node_id)):
        same_404(
            await api.get(f"{V1}/spaces/b/{kind}/{ref}", headers=bob),
            await api.get(f"{V1}/spaces/b/{kind}/{MISSING_NODE}", headers=bob),
            ref,
            MISSING_NODE,
        )
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        path = "/connections/files/test" if method == "POST" else "/connections/files"
        body = {"connectAddr": "/tmp"} if method == "PATCH" else None
        if method == "PUT":
            body = {"connectName": "files", "connectType": "FILE", "connectAddr": "/tmp"}
        same_404(
            await api.request(method, f"{V1}/spaces/a{path}", json=body, headers=bob),
            await api.request(method, f"{V1}/spaces/zz{path}", json=body, headers=bob),
            "a",
            "zz",
        )


async def test_the_seed_paths_keep_other_spaces_hidden(api: httpx.AsyncClient, world: World) -> None:
    bob, a = auth(world.tokens["bob"]), world.a
    relation = {"nodeId": a.node_id, "operatorId": 1}
    hidden = await api.post(f"{LAMP}/node/createNodeRelation", json=relation, headers=bob)
    missing = await api.post(
        f"{LAMP}/node/createNodeRelation", json={**relation, "nodeId": MISSING_NODE}, headers=bob
    )
    assert hidden.status_code == missing.status_code == 422
    assert hidden.json() == _swap(missing.json(), str(MISSING_NODE), str(a.node_id))
    for task_type in ("NODE", "EXAM"):
        same_404(
            await api.post(
                f"{LAMP}/taskEvent/startNodeTask",
                json={"taskId": a.node_id, "taskType": task_type},
                headers=bob,
            ),
            await api.post(
                f"{LAMP}/taskEvent/startNodeTask",
                json={"taskId": MISSING_NODE, "taskType": task_type},
                headers=bob,
            ),
            a.node_id,
            MISSING_NODE,
        )
    finish = {"taskId": a.node_id, "runParameter": {"runId": str(a.run_id)}}
    same_404(
        await api.post(f"{LAMP}/taskEvent/runningAutoFinish", json=finish, headers=bob),
        await api.post(
            f"{LAMP}/taskEvent/runningAutoFinish",
            json={"taskId": MISSING_NODE, "runParameter": {"runId": str(MISSING_RUN)}},
            headers=bob,
        ),
        a.run_id,
        MISSING_RUN,
    )
    operators = {"sourceAndConnects": [], "operatorTo": {"moduleName": "m", "executeObject": "X"}}
    no_space = await api.post("/operator/create_operators", json=operators, headers=bob)
    assert no_space.status_code == 403, no_space.text
    in_a = {**operators, "operatorTo": {**operators["operatorTo"], "spaceId": a.space_id}}  # type: ignore[dict-item]
    nowhere = {**operators, "operatorTo": {**operators["operatorTo"], "spaceId": MISSING_NODE}}  # type: ignore[dict-item]
    same_404(
        await api.post("/operator/create_operators", json=in_a, headers=bob),
        await api.post("/operator/create_operators", json=nowhere, headers=bob),
        a.space_id,
        MISSING_NODE,
    )
    # nothing was started or changed in a
    runs = await ok(await api.get(f"{V1}/runs", headers=auth(world.tokens["alice"])))
    assert [(r["id"], r["state"]) for r in runs["items"]] == [(a.run_id, "running")]


async def test_a_viewer_reads_a_member_writes(api: httpx.AsyncClient, world: World) -> None:
    viewer, member, a = auth(world.tokens["carol"]), auth(world.tokens["dave"]), world.a
    conn = {"connectName": "more", "connectType": "FILE", "connectAddr": "/tmp"}
    await ok(await api.get(f"{V1}/spaces/a/connections/files", headers=viewer))
    await ok(await api.get(f"{V1}/runs/{a.run_id}/logs", headers=viewer))
    for resp in (
        await api.put(f"{V1}/spaces/a/connections/more", json=conn, headers=viewer),
        await api.delete(f"{V1}/spaces/a/connections/files", headers=viewer),
        await api.post(f"{V1}/runs/{a.run_id}/stop", headers=viewer),
        await api.post(f"{V1}/services/{a.service_id}/stop", headers=viewer),
    ):
        assert resp.status_code == 403, resp.text
        assert "carol is viewer in space 'a'" in resp.json()["msg"]
    await ok(await api.put(f"{V1}/spaces/a/connections/more", json=conn, headers=member), 201)
    # a member may not change the space itself; its owner may, with a token of scope admin
    desc = {"spaceName": "a", "description": "team a"}
    for token in ("carol", "dave", "alice"):
        refused = await api.put(f"{V1}/spaces/a", json=desc, headers=auth(world.tokens[token]))
        assert refused.status_code == 403, refused.text
    changed = await ok(await api.put(f"{V1}/spaces/a", json=desc, headers=auth(world.tokens["alice-admin"])))
    assert changed["description"] == "team a"
    # a read-scope token of the owner cannot write either
    ro = await api.put(f"{V1}/spaces/a/connections/x", json=conn, headers=auth(world.tokens["alice-read"]))
    assert ro.status_code == 403 and "scope read" in ro.json()["msg"]


async def test_a_new_space_belongs_to_its_creator(api: httpx.AsyncClient, world: World) -> None:
    carol = auth(world.tokens["carol"])
    await ok(await api.put(f"{V1}/spaces/c", json={"spaceName": "c"}, headers=carol), 201)
    conn = {"connectName": "x", "connectType": "FILE", "connectAddr": "/tmp"}
    await ok(await api.put(f"{V1}/spaces/c/connections/x", json=conn, headers=carol), 201)
    assert [s["spaceName"] for s in await ok(await api.get(f"{V1}/spaces", headers=carol))] == ["a", "c"]
    # a taken name is refused without saying more
    taken = await api.put(f"{V1}/spaces/b", json={"spaceName": "b"}, headers=carol)
    assert taken.status_code == 409, taken.text


async def test_a_token_limited_to_a_space_reaches_only_it_even_for_an_admin(
    api: httpx.AsyncClient, world: World
) -> None:
    root_b, a, b = auth(world.tokens["root-b"]), world.a, world.b
    assert [s["spaceName"] for s in await ok(await api.get(f"{V1}/spaces", headers=root_b))] == ["b"]
    runs = await ok(await api.get(f"{V1}/runs", headers=root_b))
    assert [r["id"] for r in runs["items"]] == [b.run_id]
    same_404(
        await api.get(f"{V1}/runs/{a.run_id}/logs", headers=root_b),
        await api.get(f"{V1}/runs/{MISSING_RUN}/logs", headers=root_b),
        a.run_id,
        MISSING_RUN,
    )
    same_404(
        await api.get(f"{V1}/spaces/a/nodes", headers=root_b),
        await api.get(f"{V1}/spaces/zz/nodes", headers=root_b),
        "a",
        "zz",
    )
    new = await api.put(f"{V1}/spaces/d", json={"spaceName": "d"}, headers=root_b)
    assert new.status_code == 403, new.text
    await ok(await api.get(f"{V1}/spaces/b/nodes/train", headers=root_b))


async def test_agent_and_service_tokens_open_only_their_own(api: httpx.AsyncClient, world: World) -> None:
    a, b = world.a, world.b
    run_a, svc_a = auth(a.run_token), auth(a.service_token)
    own = await api.post(f"{V1}/agent/runs/{a.run_id}/heartbeat", json={"progress": 0.5}, headers=run_a)
    assert own.status_code == 200, own.text
    other = await api.get(f"{V1}/agent/runs/{b.run_id}/spec", headers=run_a)
    assert other.status_code == 401, other.text
    state = await api.post(f"{V1}/agent/runs/{b.run_id}/state", json={"state": "failed"}, headers=run_a)
    assert state.status_code == 401, state.text
    assert (await api.get(f"{V1}/agent/services/{b.service_id}/spec", headers=svc_a)).status_code == 401
    # neither token is a user's: the user routes refuse them
    assert (await api.get(f"{V1}/runs/{a.run_id}", headers=run_a)).status_code == 401
    assert (await api.get(f"{V1}/services/{a.service_id}", headers=svc_a)).status_code == 401
    runs = await ok(await api.get(f"{V1}/runs", headers=auth(world.tokens["bob"])))
    assert [r["state"] for r in runs["items"]] == ["running"]
