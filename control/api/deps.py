"""Request dependencies: the orchestrator, and who is calling (a user, a run's agent, a service)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from control import runs
from control.access import Principal, Scope, authenticate
from control.errors import Forbidden, Unauthorized
from control.orchestrator import Orchestrator
from control.secrets import token_hash
from control.store import models as m


def orchestrator(request: Request) -> Orchestrator:
    orch: Orchestrator = request.app.state.orchestrator
    return orch


async def _orchestrator(request: Request) -> Orchestrator:
    """The dependency form of `orchestrator` (async: FastAPI runs it without a worker thread)."""
    return orchestrator(request)


Orch = Annotated[Orchestrator, Depends(_orchestrator)]


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def caller(request: Request) -> Principal:
    """Who is calling (`control.access`): checked once per request, then kept on `request.state`.

    A token of scope `read` may only read: any other method is refused here with 403.
    """
    who: Principal | None = getattr(request.state, "principal", None)
    if who is None:
        orch = orchestrator(request)
        with orch.store.transaction() as ses:
            who = authenticate(ses, orch.settings, bearer(request))
        request.state.principal = who
    if who.scope is Scope.READ and request.method not in SAFE_METHODS:
        raise Forbidden(f"{who.name}: a token with scope read may not {request.method} {request.url.path}")
    return who


def require_user(request: Request) -> None:
    """A router-level guard: the call must come from a user (see `caller`)."""
    caller(request)


Caller = Annotated[Principal, Depends(caller)]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def agent_token(request: Request) -> str:
    """The run token an agent's call carries (checked against the run in the route's own
    transaction, `runs.agent_run`); none at all is refused here with 401."""
    token = bearer(request)
    if not token:
        raise Unauthorized(f"run {request.path_params.get('run_id', '?')}: the agent must send its run token")
    return token


RunToken = Annotated[str, Depends(agent_token)]


def require_run_token(request: Request, run_id: int) -> None:
    token = bearer(request)
    if not token:
        raise Unauthorized(f"run {run_id}: the agent must send its run token")
    with orchestrator(request).store.transaction() as ses:
        runs.agent_run(session=ses, run_id=run_id, token=token)


def require_service_token(request: Request, service_id: int) -> None:
    token = bearer(request)
    with orchestrator(request).store.transaction() as ses:
        svc = ses.get(m.Service, service_id)
        if token is None or svc is None or not hmac.compare_digest(svc.token_hash, token_hash(token)):
            raise Unauthorized(f"service {service_id}: the service token is not valid")
