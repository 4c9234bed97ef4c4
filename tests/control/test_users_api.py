"""Users, logins and personal tokens through the real API, on SQLite and MariaDB.

A fresh install answers everyone as the implied local admin, who creates the first user (an
admin); from then on every call needs a token, which a login hands out.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from control.store import models as m
from control.store.models import utcnow
from tests.control.factory import ok

API = "/api/v1"
ALICE_PW = "correct horse battery"
BOB_PW = "bobs-password-1"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def bootstrap(api: httpx.AsyncClient) -> str:
    """Make alice (admin) as the local admin, log her in; her token."""
    await ok(
        await api.post(f"{API}/users", json={"userName": "alice", "password": ALICE_PW, "admin": True}), 201
    )
    login = await ok(await api.post(f"{API}/login", json={"userName": "alice", "password": ALICE_PW}))
    return str(login["token"])


async def make_user(api: httpx.AsyncClient, admin: str, name: str, password: str) -> str:
    await ok(
        await api.post(f"{API}/users", json={"userName": name, "password": password}, headers=bearer(admin)),
        201,
    )
    login = await ok(await api.post(f"{API}/login", json={"userName": name, "password": password}))
    return str(login["token"])


async def test_bootstrap_login_and_password_hash(api: httpx.AsyncClient, app: FastAPI) -> None:
    seen: list[str] = []

    async def call(method: str, path: str, **kw: Any) -> httpx.Response:
        resp = await api.request(method, path, **kw)
        seen.append(resp.text)
        return resp

    me = await ok(await call("GET", f"{API}/auth"))
    assert (me["userName"], me["kind"], me["admin"]) == ("local-admin", "local", True)
    # a token kept from an earlier install changes nothing while no login is needed
    stale = await ok(await call("GET", f"{API}/auth", headers=bearer("atom_from-another-install")))
    assert stale["kind"] == "local"
    first = await call("POST", f"{API}/users", json={"userName": "alice", "password": ALICE_PW})
    assert first.status_code == 422 and "first user must be a site admin" in first.json()["msg"]
    short = await call("POST", f"{API}/users", json={"userName": "alice", "password": "short", "admin": True})
    assert short.status_code == 422 and short.json()["errors"][0]["field"] == "password"
    made = await ok(
        await call("POST", f"{API}/users", json={"userName": "alice", "password": ALICE_PW, "admin": True}),
        201,
    )
    assert made["userName"] == "alice" and made["admin"] is True and made["state"] == "ACTIVE"

    # a user exists: no more local admin
    for method, path in (("GET", f"{API}/auth"), ("POST", f"{API}/users"), ("GET", f"{API}/spaces")):
        refused = await call(method, path, json={"userName": "x", "password": "12345678"})
        assert refused.status_code == 401 and "atom login" in refused.json()["msg"]

    wrong = await call("POST", f"{API}/login", json={"userName": "alice", "password": "not her password"})
    unknown = await call("POST", f"{API}/login", json={"userName": "mallory", "password": "not her password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"msg": "wrong user name or password"}

    login = await ok(
        await call(
            "POST", f"{API}/login", json={"userName": "alice", "password": ALICE_PW, "expiresInDays": 2}
        )
    )
    assert login["token"].startswith("atom_") and login["userName"] == "alice" and login["scope"] == "admin"
    assert login["tokenName"].startswith("login-") and login["state"] == "active"
    me = await ok(await call("GET", f"{API}/auth", headers=bearer(login["token"])))
    assert me == {
        "userName": "alice",
        "admin": True,
        "scope": "admin",
        "spaces": None,
        "kind": "user",
        "tokenId": login["id"],
        "tokenName": login["tokenName"],
    }
    dup = await call(
        "POST",
        f"{API}/users",
        json={"userName": "alice", "password": ALICE_PW},
        headers=bearer(login["token"]),
    )
    assert dup.status_code == 409 and "already exists" in dup.json()["msg"]
    listed = await ok(await call("GET", f"{API}/users", headers=bearer(login["token"])))
    assert [u["userName"] for u in listed] == ["alice"]

    with app.state.orchestrator.store.transaction() as ses:
        stored = ses.scalar(select(m.User.password_hash).where(m.User.user_name == "alice"))
        token_hash = ses.scalar(select(m.Token.token_hash).where(m.Token.id == login["id"]))
        actions = ses.execute(select(m.AuditEvent.actor, m.AuditEvent.action, m.AuditEvent.kind)).all()
    assert stored is not None and stored.startswith("$argon2id$")
    assert ("alice", "login", "user") in actions and ("local-admin", "create", "user") in actions
    everything = "\n".join(seen)
    assert stored not in everything and ALICE_PW not in everything and token_hash not in everything
    assert "argon2" not in everything and "passwordHash" not in everything


async def test_scopes_spaces_and_minting(api: httpx.AsyncClient) -> None:
    alice = await bootstrap(api)
    bob = await make_user(api, alice, "bob", BOB_PW)
    await ok(await api.put(f"{API}/spaces/team-a", json={"spaceName": "team-a"}, headers=bearer(alice)), 201)
    await ok(await api.put(f"{API}/spaces/team-b", json={"spaceName": "team-b"}, headers=bearer(alice)), 201)
    await ok(await api.put(f"{API}/spaces/team-a/members/bob", json={"role": "owner"}, headers=bearer(alice)))
    await ok(await api.put(f"{API}/spaces/team-b/members/bob", json={"role": "owner"}, headers=bearer(alice)))

    read = await ok(
        await api.post(f"{API}/tokens", json={"tokenName": "ci read", "scope": "read"}, headers=bearer(bob)),
        201,
    )
    assert read["scope"] == "read" and read["userName"] == "bob" and read["token"].startswith("atom_")
    members = await ok(await api.get(f"{API}/spaces/team-a/members", headers=bearer(bob)))
    assert {(x["userName"], x["role"]) for x in members} == {("alice", "owner"), ("bob", "owner")}
    # an owner's read token may read what only owners see, and writes nothing
    seen = await api.get(f"{API}/spaces/team-a/members", headers=bearer(read["token"]))
    assert seen.status_code == 200 and len(seen.json()) == 2
    denied = await api.put(
        f"{API}/spaces/team-a/members/alice", json={"role": "member"}, headers=bearer(read["token"])
    )
    assert denied.status_code == 403 and "scope read" in denied.json()["msg"]
    post = await api.post(
        f"{API}/tokens", json={"tokenName": "x", "scope": "read"}, headers=bearer(read["token"])
    )
    assert post.status_code == 403 and "scope read may not POST" in post.json()["msg"]
    assert (await ok(await api.get(f"{API}/auth", headers=bearer(read["token"]))))["scope"] == "read"

    only_a = await ok(
        await api.post(
            f"{API}/tokens",
            json={"tokenName": "only-a", "scope": "write", "spaces": ["team-a"], "expiresInDays": 7},
            headers=bearer(bob),
        ),
        201,
    )
    assert only_a["spaces"] == ["team-a"]
    # write scope caps an owner at "change things": owner-only changes refuse with 403
    capped = await api.put(
        f"{API}/spaces/team-a/members/alice", json={"role": "member"}, headers=bearer(only_a["token"])
    )
    assert capped.status_code == 403
    # team-b is out of the token's reach: it does not exist for it
    hidden = await api.get(f"{API}/spaces/team-b/members", headers=bearer(only_a["token"]))
    assert hidden.status_code == 404 and "team-b" in hidden.json()["msg"]
    # a token cannot make one that reaches further
    for body, says in (
        ({"tokenName": "wider", "scope": "admin"}, "cannot make one with scope admin"),
        ({"tokenName": "wider", "spaces": ["team-a", "team-b"]}, "cannot make one for team-b"),
    ):
        refused = await api.post(f"{API}/tokens", json=body, headers=bearer(only_a["token"]))
        assert refused.status_code == 403 and says in refused.json()["msg"]
    narrow = await ok(
        await api.post(
            f"{API}/tokens", json={"tokenName": "narrow", "scope": "read"}, headers=bearer(only_a["token"])
        ),
        201,
    )
    assert narrow["spaces"] == ["team-a"] and narrow["scope"] == "read"

    # users are not for non-admins
    assert (await api.get(f"{API}/users", headers=bearer(bob))).status_code == 403
    assert (await api.get(f"{API}/users/alice", headers=bearer(bob))).status_code == 404
    assert (await ok(await api.get(f"{API}/users/bob", headers=bearer(bob))))["admin"] is False
    made = await api.post(f"{API}/users", json={"userName": "eve", "password": BOB_PW}, headers=bearer(bob))
    assert made.status_code == 403


async def test_expired_and_revoked_tokens_say_which(api: httpx.AsyncClient, app: FastAPI) -> None:
    alice = await bootstrap(api)
    made = await ok(await api.post(f"{API}/tokens", json={"tokenName": "old"}, headers=bearer(alice)), 201)
    other = await ok(await api.post(f"{API}/tokens", json={"tokenName": "gone"}, headers=bearer(alice)), 201)
    with app.state.orchestrator.store.transaction() as ses:
        ses.get_one(m.Token, made["id"]).expires_at = utcnow() - timedelta(days=1)
    expired = await api.get(f"{API}/auth", headers=bearer(made["token"]))
    assert expired.status_code == 401 and "token 'old' expired at" in expired.json()["msg"]

    assert (await api.delete(f"{API}/tokens/gone", headers=bearer(alice))).status_code == 204
    assert (await api.delete(f"{API}/tokens/{other['id']}", headers=bearer(alice))).status_code == 204
    revoked = await api.get(f"{API}/auth", headers=bearer(other["token"]))
    assert revoked.status_code == 401 and "token 'gone' was revoked at" in revoked.json()["msg"]
    for ref in ("nothing-here", "99999999999999999999", "9223372036854775807"):
        missing = await api.delete(f"{API}/tokens/{ref}", headers=bearer(alice))
        assert missing.status_code == 404 and "has no token" in missing.json()["msg"]
    unknown = await api.get(f"{API}/auth", headers=bearer("atom_not-a-token"))
    assert unknown.status_code == 401 and "not valid" in unknown.json()["msg"]

    listed = await ok(await api.get(f"{API}/tokens", headers=bearer(alice)))
    states = {t["tokenName"]: t["state"] for t in listed}
    assert states["old"] == "expired" and states["gone"] == "revoked"
    assert list(states.values()).count("active") == 1  # the login's
    text = str(listed)
    assert made["token"] not in text and other["token"] not in text
    assert all("token" not in t and "tokenHash" not in t for t in listed)
    assert set(listed[0]) == {
        "id", "tokenName", "userName", "scope", "spaces", "createdAt", "expiresAt", "revokedAt",
        "lastUsedAt", "state",
    }  # fmt: skip
    login = next(t for t in listed if t["tokenName"].startswith("login-"))
    assert login["lastUsedAt"] is not None


async def test_disable_password_change_and_members(api: httpx.AsyncClient) -> None:
    alice = await bootstrap(api)
    bob = await make_user(api, alice, "bob", BOB_PW)
    await ok(await api.put(f"{API}/spaces/lab", json={"spaceName": "lab"}, headers=bearer(alice)), 201)

    # members: owners and admins manage them; a space keeps one owner
    await ok(await api.put(f"{API}/spaces/lab/members/bob", json={"role": "viewer"}, headers=bearer(alice)))
    assert (await api.get(f"{API}/spaces/lab/members", headers=bearer(bob))).status_code == 403
    bad_role = await api.put(f"{API}/spaces/lab/members/bob", json={"role": "king"}, headers=bearer(alice))
    assert bad_role.status_code == 422
    nobody = await api.put(f"{API}/spaces/lab/members/nobody", json={"role": "member"}, headers=bearer(alice))
    assert nobody.status_code == 404
    last = await api.delete(f"{API}/spaces/lab/members/alice", headers=bearer(alice))  # its creator
    assert last.status_code == 409 and "'alice' is the last owner of space 'lab'" in last.json()["msg"]
    await ok(await api.put(f"{API}/spaces/lab/members/bob", json={"role": "owner"}, headers=bearer(alice)))
    assert (await api.delete(f"{API}/spaces/lab/members/alice", headers=bearer(bob))).status_code == 204
    demote = await api.put(f"{API}/spaces/lab/members/bob", json={"role": "member"}, headers=bearer(bob))
    assert demote.status_code == 409 and "last owner" in demote.json()["msg"]
    await ok(await api.put(f"{API}/spaces/lab/members/alice", json={"role": "owner"}, headers=bearer(bob)))
    assert (await api.delete(f"{API}/spaces/lab/members/bob", headers=bearer(alice))).status_code == 204
    assert (await api.delete(f"{API}/spaces/lab/members/bob", headers=bearer(alice))).status_code == 204
    assert (await api.get(f"{API}/spaces/lab/members", headers=bearer(bob))).status_code == 404

    # password: yourself with the old one, or an admin
    wrong_old = await api.put(
        f"{API}/users/bob",
        json={"password": "new-password-2", "oldPassword": "nope-nope"},
        headers=bearer(bob),
    )
    assert wrong_old.status_code == 403 and "old password is wrong" in wrong_old.json()["msg"]
    await ok(
        await api.put(
            f"{API}/users/bob",
            json={"password": "new-password-2", "oldPassword": BOB_PW},
            headers=bearer(bob),
        )
    )
    assert (await api.post(f"{API}/login", json={"userName": "bob", "password": BOB_PW})).status_code == 401
    await ok(await api.post(f"{API}/login", json={"userName": "bob", "password": "new-password-2"}))
    self_admin = await api.put(f"{API}/users/bob", json={"admin": True}, headers=bearer(bob))
    assert self_admin.status_code == 403

    # disabling: the user's tokens stop working; logins are refused
    disabled = await ok(await api.put(f"{API}/users/bob", json={"state": "DISABLED"}, headers=bearer(alice)))
    assert disabled["state"] == "DISABLED"
    after = await api.get(f"{API}/auth", headers=bearer(bob))
    assert after.status_code == 401 and "disabled" in after.json()["msg"]
    no_login = await api.post(f"{API}/login", json={"userName": "bob", "password": "new-password-2"})
    assert no_login.status_code == 401 and "disabled" in no_login.json()["msg"]
    lone = await api.put(f"{API}/users/alice", json={"state": "DISABLED"}, headers=bearer(alice))
    assert lone.status_code == 409 and "last active site admin" in lone.json()["msg"]


@pytest.mark.parametrize("who", ["alice", "bob"])
async def test_admin_lists_and_revokes_others_tokens(api: httpx.AsyncClient, who: str) -> None:
    alice = await bootstrap(api)
    bob = await make_user(api, alice, "bob", BOB_PW)
    caller = alice if who == "alice" else bob
    listed = await api.get(f"{API}/tokens", params={"user": "bob"}, headers=bearer(caller))
    assert listed.status_code == 200 and len(listed.json()) == 1
    others = await api.get(f"{API}/tokens", params={"user": "alice"}, headers=bearer(caller))
    assert others.status_code == (200 if who == "alice" else 404)
