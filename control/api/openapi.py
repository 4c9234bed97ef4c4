"""The OpenAPI document, with every error status the API can answer and its `{"msg", "errors"}` body.

FastAPI documents only the success status and its own 422 shape; `install` replaces `app.openapi`
by a builder that adds, to each operation, the refusals it can meet (`statuses`) with the one
`Error` body `control.api.errors` sends. A 500 is never documented: it must not happen.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "title": ERROR,
    "type": "object",
    "description": "Every refusal: one line (`msg`); a 422 names each wire field to blame (`errors`).",
    "properties": {
        "msg": {"type": "string", "title": "Msg"},
        "errors": {
            "type": "array",
            "title": "Errors",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "msg": {"type": "string"}},
                "required": ["field", "msg"],
            },
        },
    },
    "required": ["msg"],
}

MEANING = {
    400: "The request cannot be read (a body that is not what the route takes)",
    401: "No token, or a wrong, expired or revoked one",
    403: "The caller may see the object but not do this to it",
    404: "No such object, or none the caller may see",
    409: "The name is taken, or the object's state forbids the action",
    413: "The request body is over the limit (ATOM_MAX_BODY_BYTES; code: ATOM_CODE_MAX_BYTES)",
    415: "The body is not of a kind the route stores",
    422: "A value Atom refuses; `errors` names the fields",
    429: "Too many failed logins lately; try again after the time the message names",
    503: "The store or a target could not be reached; try again",
}

#: routes anyone may call, that touch no store
OPEN = frozenset({"/healthz"})
WRITES = frozenset({"post", "put", "patch", "delete"})
#: statuses only some routes answer, by (method, path)
EXTRA: dict[tuple[str, str], set[int]] = {
    ("post", "/api/v1/code"): {415},
    ("post", "/api/v1/login"): {429},
}


def statuses(path: str, method: str, op: dict[str, Any]) -> set[int]:
    """The error statuses `method path` can answer."""
    found: set[int] = set()
    has_input = bool(op.get("parameters")) or "requestBody" in op
    if path not in OPEN:
        found |= {401, 403, 503}
    if "{" in path or has_input:
        found |= {404, 422}
    if method in WRITES:
        found |= {400, 409, 413, 422}
    found |= EXTRA.get((method, path), set())
    return found


def add_errors(doc: dict[str, Any]) -> dict[str, Any]:
    """Add the error responses to every operation of `doc` (in place) and return it."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR] = ERROR_SCHEMA
    ref = {"$ref": f"#/components/schemas/{ERROR}"}
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses = op["responses"]
            if method == "put" and "200" in responses and "201" not in responses:
                responses["201"] = {**responses["200"], "description": "Created"}
            for status in sorted(statuses(path, method, op)):
                responses[str(status)] = {
                    "description": MEANING[status],
                    "content": {"application/json": {"schema": ref}},
                }
    if "#/components/schemas/HTTPValidationError" not in json.dumps(doc.get("paths", {})):
        schemas.pop("HTTPValidationError", None)  # FastAPI's 422 shape, which this API never sends
        schemas.pop("ValidationError", None)
    return doc


def install(app: FastAPI) -> None:
    """Make `app.openapi()` (and `/openapi.json`) return the document with its error responses."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = add_errors(doc)
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]
