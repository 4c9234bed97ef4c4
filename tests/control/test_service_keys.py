"""Service keys: rotation shows a key once (never in lists, views, audit or logs); public access;
the serving process's access and token checks, authenticated by its service token."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from control.secrets import token_hash
from control.store import models as m
from control.store import repo
from tests.control.service_rows import service_row, tenancy


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_rotated_key_is_shown_once_and_stored_as_its_hash(
    app: FastAPI, api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    t = tenancy(app)
    resp = await api.post(f"/api/v1/services/{t.service_id}/key", headers=bearer(t.writer))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    key = body["key"]
    assert key.startswith("atomsk_") and body["serviceName"] == "tabular-1"
    again = (await api.post(f"/api/v1/services/{t.service_id}/key", headers=bearer(t.writer))).json()["key"]
    assert again != key
    with app.state.orchestrator.store.transaction() as ses:
        svc = ses.get(m.Service, t.service_id)
        assert svc is not None and svc.api_key_hash == token_hash(again)
        events = ses.scalars(select(m.AuditEvent).where(m.AuditEvent.action == "rotate-key")).all()
        assert [e.name for e in events] == ["tabular-1", "tabular-1"]
        stored = repr([(e.detail, e.name) for e in events])

    listed = await api.get("/api/v1/services", headers=bearer(t.reader))
    one = await api.get(f"/api/v1/services/{t.service_id}", headers=bearer(t.reader))
    assert listed.status_code == one.status_code == 200
    assert one.json()["hasKey"] is True and one.json()["public"] is False and one.json()["apiKey"] is None
    for secret in (key, again):
        assert secret not in listed.text and secret not in one.text and secret not in stored
        assert secret not in caplog.text


async def test_rotating_needs_write_in_the_service_space(app: FastAPI, api: httpx.AsyncClient) -> None:
    t = tenancy(app)
    url = f"/api/v1/services/{t.service_id}/key"
    assert (await api.post(url)).status_code == 401
    read_only = await api.post(url, headers=bearer(t.reader))
    assert read_only.status_code == 403 and "scope read" in read_only.json()["msg"]
    stranger = await api.post(url, headers=bearer(t.stranger))
    assert stranger.status_code == 404 and stranger.json()["msg"] == f"service {t.service_id} does not exist"
    missing = await api.post("/api/v1/services/999/key", headers=bearer(t.writer))
    assert missing.status_code == 404


async def test_public_is_set_by_patch(app: FastAPI, api: httpx.AsyncClient) -> None:
    t = tenancy(app)
    url = f"/api/v1/services/{t.service_id}"
    on = await api.patch(url, json={"public": True}, headers=bearer(t.writer))
    assert on.status_code == 200 and on.json()["public"] is True
    assert (await api.get(url, headers=bearer(t.reader))).json()["public"] is True
    assert (await api.patch(url, json={"public": False}, headers=bearer(t.reader))).status_code == 403
    assert (await api.patch(url, json={"public": False}, headers=bearer(t.stranger))).status_code == 404
    assert (await api.patch(url, json={"public": "maybe"}, headers=bearer(t.writer))).status_code == 422
    off = await api.patch(url, json={"public": False}, headers=bearer(t.writer))
    assert off.json()["public"] is False


async def test_the_serving_process_reads_its_access_with_its_service_token(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    t = tenancy(app)
    url = f"/api/v1/agent/services/{t.service_id}/access"
    assert (await api.get(url)).status_code == 401
    assert (await api.get(url, headers=bearer(t.writer))).status_code == 401  # a user token is not it
    key = (await api.post(f"/api/v1/services/{t.service_id}/key", headers=bearer(t.writer))).json()["key"]
    access = (await api.get(url, headers=bearer(t.service_token))).json()
    assert access == {"public": False, "keyHashes": [token_hash(key)], "anonymous": False}
    assert key not in repr(access)


async def test_control_says_which_user_tokens_open_the_service(app: FastAPI, api: httpx.AsyncClient) -> None:
    t = tenancy(app)
    url = f"/api/v1/agent/services/{t.service_id}/access/check"

    async def verdict(token: str) -> dict[str, object]:
        resp = await api.post(url, json={"token": token}, headers=bearer(t.service_token))
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    assert (await verdict(t.reader))["allowed"] is True  # read is enough to infer
    assert (await verdict(t.writer))["allowed"] is True
    other = await verdict(t.stranger)
    assert other["allowed"] is False and other["status"] == 403 and "otto" in str(other["reason"])
    wrong = await verdict("atom_not-a-token")
    assert wrong["allowed"] is False and wrong["status"] == 401
    assert (await api.post(url, json={"token": t.reader})).status_code == 401  # no service token


async def test_a_single_user_install_lets_callers_without_a_token_in(
    api: httpx.AsyncClient, app: FastAPI
) -> None:
    """No users and no ATOM_API_TOKEN: control has no logins, so the service admits its local admin."""
    with app.state.orchestrator.store.transaction() as ses:
        space, _ = repo.ensure_space(session=ses, name="default")
        svc, token = service_row(ses, space.id, "solo", key_hash=None)
        sid = svc.id
    access = (await api.get(f"/api/v1/agent/services/{sid}/access", headers=bearer(token))).json()
    assert access == {"public": False, "keyHashes": [], "anonymous": True}
    view = (await api.get(f"/api/v1/services/{sid}")).json()
    assert view["hasKey"] is False and view["public"] is False
