"""The control subtree of Atom's error hierarchy (root: `connectors.errors.AtomError`).

```
ControlError
├─ NotFound(Permanent)            404: no such space / node / run / ...
├─ Conflict(Permanent)            409: the name is taken, or the state forbids the action
├─ InvalidSpec(ConfigError)       422: a definition Atom refuses (cycle, bad name, missing link);
│                                      `errors` names the wire fields to blame
├─ InvalidTransition(Permanent)   409: a state change the run state machine does not allow
├─ Unauthorized(Permanent)        401: no token, or a wrong, expired or revoked one
├─ Forbidden(Permanent)           403: the caller may see the object but not do this to it
├─ TooLarge(Permanent)            413: a request body over the limit
├─ TooManyRequests(Transient)     429: too many failed logins lately; try again later
├─ DispatchFailed(Permanent)      503: the adapter could not start the run
│   └─ Infeasible                 422: the target can never hold what the run asks (control.dispatch)
└─ ControlAPIError                client side: what the server answered (status + msg + fields)
    └─ ControlUnreachable(Transient)  no server at the URL
```
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from connectors.errors import AtomError, ConfigError, Permanent, Transient


class ControlError(AtomError):
    """Base of every error raised by control and its client."""

    status_code: int = 500


class NotFound(ControlError, Permanent):
    status_code = 404


class Conflict(ControlError, Permanent):
    status_code = 409


class InvalidSpec(ControlError, ConfigError):
    """A definition Atom refuses; `errors` lists `{"field": <camelCase wire name>, "msg": ...}`.

    Args:
        message: the whole one-line message (the response's `msg`).
        field: the one wire field to blame (dotted for nesting); its message is `field_msg` or `message`.
        field_msg: what is wrong with `field`, when shorter than `message`.
        errors: several field errors at once (e.g. from a pydantic `ValidationError`).
    """

    status_code = 422

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        field_msg: str | None = None,
        errors: list[dict[str, str]] | None = None,
        **context: Any,
    ) -> None:
        found = list(errors or [])
        if field is not None:
            found.append({"field": field, "msg": field_msg or message})
        super().__init__(message, errors=found, **context)
        self.errors = found


class InvalidTransition(ControlError, Permanent):
    status_code = 409


class Unauthorized(ControlError, Permanent):
    status_code = 401


class Forbidden(ControlError, Permanent):
    status_code = 403


class TooLarge(ControlError, Permanent):
    status_code = 413


class TooManyRequests(ControlError, Transient):
    status_code = 429


class DispatchFailed(ControlError, Permanent):
    """The target could not start the run (unreachable cluster, missing interpreter): the run fails."""

    status_code = 503


class ControlAPIError(ControlError):
    """What the control server answered with a non-2xx status.

    Attributes:
        status_code: the HTTP status.
        fields: wire field name (camelCase, dotted for nesting) -> what is wrong with it, from a
            422 answer's `errors`; empty when the server named no field.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 500,
        fields: dict[str, str] | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, status_code=status_code, fields=dict(fields or {}), **context)
        self.status_code = status_code
        self.fields: dict[str, str] = dict(fields or {})


class ControlUnreachable(ControlAPIError, Transient):
    def __init__(self, url: str, detail: str) -> None:
        ControlAPIError.__init__(
            self,
            f"control at {url} is not reachable ({detail}): start it with `atom server` or set ATOM_URL",
            status_code=503,
            url=url,
        )
        self.retry_after = 1.0


_SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")
_PLACES = ("body", "query", "path", "header", "cookie")


def _camel(part: str) -> str:
    head, *rest = part.split("_")
    return head + "".join(word.title() for word in rest)


def wire_field(loc: Iterable[Any]) -> str:
    """A pydantic/FastAPI error location as a wire field: `("body", "sources", 0, "connect_port")`
    -> `sources.0.connectPort` (the request part dropped, snake_case names turned camelCase)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in _PLACES:
        parts = parts[1:]
    return ".".join(_camel(p) if _SNAKE.match(p) else p for p in parts)


def field_errors(errors: Iterable[Mapping[str, Any]], *, whole: str = "body") -> list[dict[str, str]]:
    """`{"field", "msg"}` for each pydantic error (`ValidationError.errors()` or FastAPI's).

    Args:
        errors: the error dicts (`loc`, `type`, `msg`).
        whole: the field named when an error is about the whole body.
    """
    out = []
    for err in errors:
        kind = err.get("type")
        loc = list(err.get("loc", ()))
        if kind == "extra_forbidden":  # the name as the caller sent it
            where = ".".join([wire_field(loc[:-1]), str(loc[-1])]).strip(".") if loc else whole
            msg = "unknown field"
        else:
            where = wire_field(loc) or whole
            msg = "required" if kind == "missing" else str(err.get("msg", "")).removeprefix("Value error, ")
        out.append({"field": where, "msg": msg})
    return out


def describe_fields(errors: list[dict[str, str]]) -> str:
    """`field: msg; field: msg` for a one-line message."""
    return "; ".join(f"{e['field']}: {e['msg']}" for e in errors)
