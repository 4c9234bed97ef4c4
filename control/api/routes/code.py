"""Operator code bundles (codeMode BUNDLE): upload once, content-addressed; a run's agent downloads its own.

`POST /api/v1/code` streams a tar.gz or zip into `control.code_store.CodeStore` (user token);
`GET /api/v1/code/{digest}` serves it to a user, to a run's agent that sends its run token and
`?runId=` (only the code that run's operator names), or to a service's `atom-runtime serve` that
sends its service token and `?serviceId=` (only the code of the run that trained its model).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import Field

from connectors.errors import Permanent
from control import audit
from control.access import LEVEL_OF_SCOPE, Need
from control.api.deps import caller, orchestrator, require_run_token, require_service_token, require_user
from control.api.params import MAX_ID
from control.api.routes.agent import service_run
from control.code_store import CodeStore, archive_kind, parse_digest
from control.errors import ControlError, Forbidden, InvalidSpec, NotFound
from control.schemas import Wire
from control.store import models as m

router = APIRouter(prefix="/api/v1/code", tags=["code"])


class CodeStored(Wire):
    digest: str = Field(description="sha256:<hex> of the bundle's bytes; codeAddress is atom-code://<digest>")
    size: int


class NotThisRunsCode(ControlError, Permanent):
    status_code = 403


def code_store(request: Request) -> CodeStore:
    """The app's store, made on first use from control's settings."""
    store: CodeStore | None = getattr(request.app.state, "code_store", None)
    if store is None:
        settings = orchestrator(request).settings
        store = CodeStore(settings.home, max_bytes=settings.code_max_bytes)
        request.app.state.code_store = store
    return store


Store = Annotated[CodeStore, Depends(code_store)]
RunId = Annotated[
    int | None, Query(alias="runId", ge=1, le=MAX_ID, description="the agent's run (with its run token)")
]
ServiceId = Annotated[
    int | None,
    Query(alias="serviceId", ge=1, le=MAX_ID, description="the serving service (with its service token)"),
]


@router.post("", response_model=CodeStored, dependencies=[Depends(require_user)])
async def upload_code(request: Request, store: Store) -> CodeStored:
    """Store a tar.gz or zip sent as the raw request body (streamed to disk, never whole in memory).

    The same bytes are stored once. A body over `ATOM_CODE_MAX_BYTES` is refused with 413,
    one that is not a tar.gz or zip with 415.
    """
    length = request.headers.get("content-length")
    stored = await store.put(request.stream(), length=int(length) if length and length.isdigit() else None)
    who = caller(request)  # a bundle belongs to no space: the event is in the site-wide trail
    await orchestrator(request).db(
        lambda ses: audit.record(ses, who, "create", "code", stored.digest, size=stored.size)
    )
    return CodeStored(digest=stored.digest, size=stored.size)


def authorize(request: Request, digest: str, run_id: int | None, service_id: int | None = None) -> None:
    """A user (token when ATOM_API_TOKEN is set), the agent of a run whose operator names this code,
    or a service whose model was trained by such a run.

    Raises:
        Unauthorized: no valid user, run or service token (401).
        NotThisRunsCode: the run's (or the service's run's) operator names other code (403).
    """
    if run_id is not None and service_id is not None:
        raise InvalidSpec("pass runId or serviceId, not both")
    if service_id is not None:
        require_service_token(request, service_id)
        with orchestrator(request).store.transaction() as ses:
            svc = ses.get(m.Service, service_id)
            operator = _operator(service_run(ses, svc) if svc is not None else None)
        whose = f"service {service_id}: the code of the run that trained its model"
    elif run_id is not None:
        require_run_token(request, run_id)
        with orchestrator(request).store.transaction() as ses:
            operator = _operator(ses.get(m.Runtime, run_id))
        whose = f"run {run_id}: its operator's code"
    else:
        who = caller(request)
        if LEVEL_OF_SCOPE[who.scope] < Need.WRITE:
            raise Forbidden(f"{who.name}: code bundles are read with a token of scope write or admin")
        return
    if _address(operator) != f"atom-code://{digest}":
        raise NotThisRunsCode(f"{whose} is not {digest}")


def _operator(run: m.Runtime | None) -> dict[str, Any]:
    operator: dict[str, Any] = ((run.spec or {}).get("operator") or {}) if run is not None else {}
    return operator


def _address(operator: dict[str, Any]) -> object:
    return operator.get("codeAddress") or operator.get("code_address")


@router.get("/{digest}", response_class=FileResponse)
def download_code(
    digest: str, request: Request, store: Store, run_id: RunId = None, service_id: ServiceId = None
) -> FileResponse:
    """The bundle's bytes (`application/gzip` or `application/zip`)."""
    return serve(digest, request, store, run_id, service_id)


@router.head("/{digest}", response_class=FileResponse)
def code_exists(
    digest: str, request: Request, store: Store, run_id: RunId = None, service_id: ServiceId = None
) -> FileResponse:
    """200 with the bundle's size when it is stored, else 404 (nothing is sent)."""
    return serve(digest, request, store, run_id, service_id)


def serve(
    digest: str, request: Request, store: CodeStore, run_id: int | None, service_id: int | None = None
) -> FileResponse:
    parse_digest(digest)
    authorize(request, digest, run_id, service_id)
    path = store.path_of(digest)
    try:
        with open(path, "rb") as f:
            kind = archive_kind(f.read(8))
    except OSError as exc:
        raise NotFound(f"code {digest} cannot be read from control's store: {exc.strerror}") from exc
    media = "application/zip" if kind == "zip" else "application/gzip"
    name = f"{digest.split(':', 1)[1][:16]}.{kind or 'bin'}"
    return FileResponse(path, media_type=media, filename=name)
