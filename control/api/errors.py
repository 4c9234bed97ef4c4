"""The one place errors become HTTP: `{"msg": "..."}`, 4xx for the caller's fault, 5xx for ours.

A 422 also carries `errors: [{"field": <camelCase wire name, dotted for nesting>, "msg": ...}]`,
so a form can put each message beside its field (empty when no single field is to blame).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors.errors import AtomError, ConfigError, Permanent, Transient
from control.errors import ControlError, describe_fields, field_errors

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


def body_of(exc: AtomError, status: int) -> dict[str, Any]:
    """The JSON body for `exc`: `msg`, plus `errors` on a 422."""
    body: dict[str, Any] = {"msg": str(exc)}
    errors = getattr(exc, "errors", None)
    if status == 422 or errors:
        body["errors"] = list(errors) if isinstance(errors, list) else []
    return body


def install(app: FastAPI) -> None:
    @app.exception_handler(AtomError)
    async def atom_error(_: Request, exc: AtomError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            logger.error("request failed: %s", exc)
        return JSONResponse(body_of(exc, status), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc.errors())
        return JSONResponse(
            {"msg": "invalid request: " + describe_fields(errors), "errors": errors}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"msg": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected error", exc_info=exc)
        return JSONResponse(
            {"msg": f"internal error ({type(exc).__name__}); see the control log"}, status_code=500
        )
