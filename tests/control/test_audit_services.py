"""A service's stop and approval are recorded with the change itself, by whoever did it; a refused
one records nothing. Real app over ASGI, on SQLite and MariaDB."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from control import users
from control.access import Role, Scope
from control.store import models as m
from control.store import repo
from tests.control.service_rows import service_row


def events(app: FastAPI) -> list[tuple[str, str, str]]:
    with app.state.orchestrator.store.transaction() as ses:
        rows = ses.scalars(
            select(m.AuditEvent).where(m.AuditEvent.kind == "service").order_by(m.AuditEvent.id)
        )
        return [(e.actor, e.action, e.name) for e in rows]


async def test_stop_and_approve_are_audited_with_the_change(app: FastAPI, api: httpx.AsyncClient) -> None:
    with app.state.orchestrator.store.transaction() as ses:
        space, _ = repo.ensure_space(session=ses, name="team")
        svc, _ = service_row(ses, space.id, "tabular", key_hash=None)
        svc.state = "ready"
        sid = svc.id
        tokens = {}
        for name, role in (("mia", Role.MEMBER), ("vic", Role.VIEWER)):
            user = users.create_user(ses, name)
            users.set_member(ses, space, user, role)
            tokens[name] = users.issue_token(ses, user, "cli", scope=Scope.WRITE, expires_at=None).secret

    def bearer(name: str) -> dict[str, str]:
        return {"authorization": f"Bearer {tokens[name]}"}

    refused = await api.post(f"/api/v1/services/{sid}/stop", headers=bearer("vic"))
    assert refused.status_code == 403 and events(app) == []
    busy = await api.post(f"/api/v1/services/{sid}/approve", headers=bearer("mia"))
    assert busy.status_code == 409 and events(app) == []  # a ready service is not approved

    stopped = await api.post(f"/api/v1/services/{sid}/stop", headers=bearer("mia"))
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    assert events(app) == [("mia", "stop", "tabular-1")]
