"""The one place errors become HTTP: `{"msg": "..."}`, 4xx for the caller's fault, 5xx for ours."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors.errors import AtomError, ConfigError, Permanent, Transient
from control.errors import ControlError

logger = logging.getLogger(__name__)


def status_for(exc: AtomError) -> int:
    if isinstance(exc, ControlError) and exc.status_code:
        return exc.status_code
    if isinstance(exc, ConfigError):
        return 422
    if isinstance(exc, Transient):
        return 503
    if isinstance(exc, Permanent):
        return 400
    return 500


def describe(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(loc) or "body"
        if err.get("type") == "extra_forbidden":
            parts.append(f"{where}: unknown field")
        elif err.get("type") == "missing":
            parts.append(f"{where}: required")
        else:
            parts.append(f"{where}: {err.get('msg')}")
    return "invalid request: " + "; ".join(parts)


def install(app: FastAPI) -> None:
    @app.exception_handler(AtomError)
    async def atom_error(_: Request, exc: AtomError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            logger.error("request failed: %s", exc)
        return JSONResponse({"msg": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"msg": describe(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"msg": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected error", exc_info=exc)
        return JSONResponse(
            {"msg": f"internal error ({type(exc).__name__}); see the control log"}, status_code=500
        )
