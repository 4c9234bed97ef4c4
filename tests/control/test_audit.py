"""The audit trail: who created, changed, started, stopped, approved or deleted what; readable by
the space's owners (and site admins), filtered, never holding a secret, written with the change
or not at all. Real app over ASGI, on SQLite and MariaDB."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from control import users
from control.access import Role, Scope
from control.secrets import token_hash
from control.store import models as m
from tests.control.factory import ok
from tests.control.test_code_store import targz

V1 = "/api/v1"
PASSWORDS = ("first-Pa55word-kept-secret", "second-Pa55word-kept-secret", "third-Pa55word-kept-secret")


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def tokens(app: FastAPI) -> dict[str, str]:
    """alice (write and admin scope), bob, dave (to be a member of a, admin scope), root (site admin)."""
    with app.state.orchestrator.store.transaction() as ses:
        made = {n: users.create_user(ses, n, admin=n == "root") for n in ("alice", "bob", "dave", "root")}
        out = {n: users.issue_token(ses, u, "cli", expires_at=None).secret for n, u in made.items()}
        for name in ("alice", "dave", "bob", "root"):
            out[f"{name}-admin"] = users.issue_token(
                ses, made[name], "admin", scope=Scope.ADMIN, expires_at=None
            ).secret
    return out


def add_run_and_service(app: FastAPI, space_id: int) -> tuple[int, int]:
    with app.state.orchestrator.store.transaction() as ses:
        run = m.Runtime(
            space_id=space_id,
            node_name="train",
            operator_runtime_type="TRAIN",
            state="running",
            token_hash=token_hash("run-token"),
            spec={},
        )
        ses.add(run)
        ses.flush()
        model = m.Model(space_id=space_id, model_name="tabular")
        ses.add(model)
        ses.flush()
        version = m.ModelVersion(model_id=model.id, model_version="1", model_address="file:///m")
        ses.add(version)
        ses.flush()
        svc = m.Service(
            space_id=space_id,
            service_name="tabular-1",
            model_id=model.id,
            model_version_id=version.id,
            serving_object="op:Serve",
            state="running",
            token_hash=token_hash("service-token"),
        )
        ses.add(svc)
        ses.flush()
        return run.id, svc.id


def add_finishing_run(app: FastAPI, space_id: int) -> int:
    """A running run whose operator deploys nothing: runningAutoFinish only marks it succeeded."""
    operator = {"operatorName": "op", "operatorRuntimeType": "TRAIN", "moduleName": "m", "executeObject": "X"}
    with app.state.orchestrator.store.transaction() as ses:
        run = m.Runtime(
            space_id=space_id,
            node_name="train",
            operator_runtime_type="TRAIN",
            state="running",
            token_hash=token_hash("another-run-token"),
            spec={},
        )
        ses.add(run)
        ses.flush()
        run.spec = {"runId": run.id, "nodeName": "train", "operator": operator}
        return run.id


def all_rows(app: FastAPI) -> list[dict[str, Any]]:
    with app.state.orchestrator.store.transaction() as ses:
        return [
            {"actor": r.actor, "action": r.action, "kind": r.kind, "name": r.name, "detail": r.detail}
            for r in ses.scalars(select(m.AuditEvent).order_by(m.AuditEvent.id))
        ]


async def test_owners_read_what_was_done_and_no_secret_is_kept(
    app: FastAPI, api: httpx.AsyncClient, tokens: dict[str, str], tmp_path: Path
) -> None:
    alice = auth(tokens["alice"])
    space = await ok(await api.put(f"{V1}/spaces/a", json={"spaceName": "a"}, headers=alice), 201)
    conn = {"connectName": "db", "connectType": "FILE", "connectAddr": str(tmp_path)}
    await ok(
        await api.put(
            f"{V1}/spaces/a/connections/db", json={**conn, "connectPassword": PASSWORDS[0]}, headers=alice
        )
    )
    await ok(
        await api.patch(
            f"{V1}/spaces/a/connections/db", json={"connectPassword": PASSWORDS[1]}, headers=alice
        )
    )
    await ok(
        await api.put(
            f"{V1}/spaces/a/connections/db", json={**conn, "connectPassword": PASSWORDS[2]}, headers=alice
        )
    )
    node = {"nodeName": "train", "operatorRuntimeType": "TRAIN"}
    await ok(await api.put(f"{V1}/spaces/a/nodes/train", json=node, headers=alice))
    await ok(await api.delete(f"{V1}/spaces/a/nodes/train", headers=alice), 204)
    run_id, service_id = add_run_and_service(app, space["id"])
    await ok(await api.post(f"{V1}/runs/{run_id}/stop", json={"reason": "enough"}, headers=alice))
    await ok(await api.post(f"{V1}/services/{service_id}/stop", headers=alice))
    finishing = add_finishing_run(app, space["id"])
    finish = {"taskId": finishing, "runParameter": {"runId": str(finishing)}}
    await ok(
        await api.post("/lamp/atom/service/operator/taskEvent/runningAutoFinish", json=finish, headers=alice)
    )
    await ok(await api.put(f"{V1}/spaces/b", json={"spaceName": "b"}, headers=auth(tokens["bob"])), 201)

    resp = await api.get(f"{V1}/spaces/a/audit", headers=auth(tokens["alice-admin"]))
    page = await ok(resp)
    assert [(e["actor"], e["action"], e["kind"], e["name"]) for e in reversed(page["items"])] == [
        ("alice", "create", "space", "a"),
        ("alice", "create", "connection", "db"),
        ("alice", "change", "connection", "db"),
        ("alice", "change", "connection", "db"),
        ("alice", "create", "node", "train"),
        ("alice", "delete", "node", "train"),
        ("alice", "stop", "run", str(run_id)),
        ("alice", "stop", "service", "tabular-1"),
        ("alice", "finish", "run", str(finishing)),
    ]
    assert page["total"] == 9 and {e["space"] for e in page["items"]} == {"a"}
    assert page["items"][-3]["detail"] == {
        "id": page["items"][-2]["detail"]["id"],
        "fields": ["connectPassword"],
    }
    assert page["items"][2]["detail"]["reason"] == "enough"
    everything = json.dumps(all_rows(app)) + resp.text
    for password in PASSWORDS:
        assert password not in everything

    async def names(**params: Any) -> list[tuple[str, str]]:
        got = await ok(
            await api.get(f"{V1}/spaces/a/audit", params=params, headers=auth(tokens["alice-admin"]))
        )
        return [(e["action"], e["kind"]) for e in got["items"]]

    assert await names(kind="connection", action="change") == [("change", "connection")] * 2
    assert await names(actor="bob") == []
    assert await names(since=(datetime.now(UTC) + timedelta(hours=1)).isoformat()) == []
    assert len(await names(since=(datetime.now(UTC) - timedelta(hours=1)).isoformat())) == 9
    assert await names(limit=2, offset=2) == [("stop", "run"), ("delete", "node")]


async def test_only_owners_and_site_admins_read_the_trail(
    app: FastAPI, api: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    await ok(await api.put(f"{V1}/spaces/a", json={"spaceName": "a"}, headers=auth(tokens["alice"])), 201)
    await ok(await api.put(f"{V1}/spaces/b", json={"spaceName": "b"}, headers=auth(tokens["bob"])), 201)
    with app.state.orchestrator.store.transaction() as ses:
        space = ses.scalar(select(m.Space).where(m.Space.space_name == "a"))
        assert space is not None
        users.set_member(ses, space, users.get_user(ses, "dave"), Role.MEMBER)

    hidden = await api.get(f"{V1}/spaces/a/audit", headers=auth(tokens["bob-admin"]))
    missing = await api.get(f"{V1}/spaces/zz/audit", headers=auth(tokens["bob-admin"]))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["msg"] == missing.json()["msg"].replace("zz", "a")
    member = await api.get(f"{V1}/spaces/a/audit", headers=auth(tokens["dave-admin"]))
    assert member.status_code == 403 and "dave is member in space 'a'" in member.json()["msg"]
    # reading the trail is a read: an owner's (or a site admin's) token of any scope will do
    assert (await api.get(f"{V1}/spaces/a/audit", headers=auth(tokens["alice"]))).status_code == 200
    assert (await api.get(f"{V1}/audit", headers=auth(tokens["alice-admin"]))).status_code == 403
    assert (await api.get(f"{V1}/audit", headers=auth(tokens["root"]))).status_code == 200
    site = await ok(
        await api.get(f"{V1}/audit", params={"kind": "space"}, headers=auth(tokens["root-admin"]))
    )
    assert [(e["space"], e["actor"]) for e in site["items"]] == [("b", "bob"), ("a", "alice")]


async def test_a_refused_change_leaves_no_audit_event(
    app: FastAPI, api: httpx.AsyncClient, tokens: dict[str, str], tmp_path: Path
) -> None:
    alice = auth(tokens["alice"])
    await ok(await api.put(f"{V1}/spaces/a", json={"spaceName": "a"}, headers=alice), 201)
    conn = {"connectName": "files", "connectType": "FILE", "connectAddr": str(tmp_path)}
    await ok(await api.put(f"{V1}/spaces/a/connections/files", json=conn, headers=alice))
    source = {
        "sourceName": "train",
        "connectionName": "files",
        "sourceType": "source",
        "operateExecute": "t.csv",
    }
    await ok(await api.put(f"{V1}/spaces/a/sources/train", json=source, headers=alice))
    before = all_rows(app)
    still_used = await api.delete(f"{V1}/spaces/a/connections/files", headers=alice)
    assert still_used.status_code == 409, still_used.text
    bad = await api.patch(f"{V1}/spaces/a/connections/files", json={"connectPort": 0}, headers=alice)
    assert bad.status_code == 422, bad.text
    assert all_rows(app) == before
    assert [(r["action"], r["kind"]) for r in before] == [
        ("create", "space"),
        ("create", "connection"),
        ("create", "data-source"),
    ]


async def test_code_uploads_are_in_the_site_trail_and_read_scope_cannot_download(
    app: FastAPI, api: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    with app.state.orchestrator.store.transaction() as ses:
        read_only = users.issue_token(
            ses, users.get_user(ses, "alice"), "ro", scope=Scope.READ, expires_at=None
        ).secret
    stored = await ok(await api.post(f"{V1}/code", content=targz(), headers=auth(tokens["alice"])))
    site = await ok(await api.get(f"{V1}/audit", params={"kind": "code"}, headers=auth(tokens["root-admin"])))
    assert [(e["actor"], e["action"], e["name"], e["space"]) for e in site["items"]] == [
        ("alice", "create", stored["digest"], None)
    ]
    assert (await api.get(f"{V1}/code/{stored['digest']}", headers=auth(tokens["bob"]))).status_code == 200
    refused = await api.get(f"{V1}/code/{stored['digest']}", headers=auth(read_only))
    assert refused.status_code == 403 and "scope write" in refused.json()["msg"]
