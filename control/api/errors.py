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
from control.api.params import NAME_PATTERN, REF_PATTERN
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


#: what a pattern of `control.api.params` asks for, in words
PATTERN_WORDS = {
    NAME_PATTERN: "use at most 63 lower-case letters, digits and '-', "
    "starting and ending with a letter or digit",
    REF_PATTERN: "use letters, digits, '-', '_' and '.', starting and ending with a letter or digit "
    "(or give the id)",
}


def readable(err: Any) -> Any:
    """A pattern mismatch of a name parameter said in words, with the value refused."""
    pattern = (err.get("ctx") or {}).get("pattern")
    if err.get("type") == "string_pattern_mismatch" and pattern in PATTERN_WORDS:
        return {**err, "msg": f"{err.get('input')!r} is not a valid name: {PATTERN_WORDS[pattern]}"}
    return err


def http_message(request: Request, exc: StarletteHTTPException) -> str:
    """One line for the framework's own refusals (no route, wrong method, an unreadable body)."""
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 404 and exc.detail == "Not Found":
        return f"no such route: {where} (the API is described at /openapi.json)"
    if exc.status_code == 405:
        allowed = next((v for k, v in (exc.headers or {}).items() if k.lower() == "allow"), "")
        return f"{where}: method not allowed" + (f"; this path takes {allowed}" if allowed else "")
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError):
            return f"the request body is not UTF-8 text ({cause.reason} at byte {cause.start})"
        if isinstance(cause, RecursionError):
            return "the request body nests values too deeply to be read"
        return f"the request body cannot be read ({type(cause).__name__ if cause else 'unreadable'})"
    return str(exc.detail)


def install(app: FastAPI) -> None:
    @app.exception_handler(AtomError)
    async def atom_error(_: Request, exc: AtomError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            logger.error("request failed: %s", exc)
        return JSONResponse(body_of(exc, status), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        raw = list(exc.errors())
        bad_json = next((e for e in raw if e.get("type") == "json_invalid"), None)
        if bad_json is not None:
            loc = list(bad_json.get("loc", ()))
            at = f" at character {loc[-1]}" if len(loc) > 1 else ""
            why = (bad_json.get("ctx") or {}).get("error", "")
            msg = f"the request body is not valid JSON{at}" + (f": {why}" if why else "")
            return JSONResponse({"msg": msg, "errors": [{"field": "body", "msg": msg}]}, status_code=422)
        errors = field_errors([readable(e) for e in raw])
        return JSONResponse(
            {"msg": "invalid request: " + describe_fields(errors), "errors": errors}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"msg": http_message(request, exc)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected error", exc_info=exc)
        return JSONResponse(
            {"msg": f"internal error ({type(exc).__name__}); see the control log"}, status_code=500
        )
