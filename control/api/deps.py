"""Request dependencies: the orchestrator, and who is calling (a user, a run's agent, a service)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select

from control.errors import Unauthorized
from control.orchestrator import Orchestrator
from control.secrets import token_hash
from control.store import models as m


def orchestrator(request: Request) -> Orchestrator:
    orch: Orchestrator = request.app.state.orchestrator
    return orch


Orch = Annotated[Orchestrator, Depends(orchestrator)]


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def require_user(request: Request) -> None:
    """When ATOM_API_TOKEN is set (or users have tokens), user calls must carry a valid one."""
    orch = orchestrator(request)
    expected = orch.settings.api_token
    token = bearer(request)
    if expected is None:
        return
    if token and hmac.compare_digest(token, expected.get_secret_value()):
        return
    if token:
        with orch.store.transaction() as ses:
            if ses.scalar(select(m.Token.id).where(m.Token.token_hash == token_hash(token))):
                return
    raise Unauthorized("a valid API token is required: pass --token or set ATOM_TOKEN")


def require_run_token(request: Request, run_id: int) -> None:
    token = bearer(request)
    if not token:
        raise Unauthorized(f"run {run_id}: the agent must send its run token")
    with orchestrator(request).store.transaction() as ses:
        run = ses.get(m.Runtime, run_id)
        if run is None or not hmac.compare_digest(run.token_hash, token_hash(token)):
            raise Unauthorized(f"run {run_id}: the run token is not valid")


def require_service_token(request: Request, service_id: int) -> None:
    token = bearer(request)
    with orchestrator(request).store.transaction() as ses:
        svc = ses.get(m.Service, service_id)
        if token is None or svc is None or not hmac.compare_digest(svc.token_hash, token_hash(token)):
            raise Unauthorized(f"service {service_id}: the service token is not valid")
