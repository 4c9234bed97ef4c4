"""The control subtree of Atom's error hierarchy (root: `connectors.errors.AtomError`).

```
ControlError
├─ NotFound(Permanent)            404: no such space / node / run / ...
├─ Conflict(Permanent)            409: the name is taken, or the state forbids the action
├─ InvalidSpec(ConfigError)       422: a definition Atom refuses (cycle, bad name, missing link)
├─ InvalidTransition(Permanent)   409: a state change the run state machine does not allow
├─ Unauthorized(Permanent)        401: no token, or a wrong one
├─ DispatchFailed(Permanent)      the adapter could not start the run
└─ ControlAPIError                client side: what the server answered (status + msg)
    └─ ControlUnreachable(Transient)  no server at the URL
```
"""

from __future__ import annotations

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
    status_code = 422


class InvalidTransition(ControlError, Permanent):
    status_code = 409


class Unauthorized(ControlError, Permanent):
    status_code = 401


class DispatchFailed(ControlError, Permanent):
    status_code = 500


class ControlAPIError(ControlError):
    """What the control server answered with a non-2xx status."""

    def __init__(self, message: str, *, status_code: int = 500, **context: Any) -> None:
        super().__init__(message, status_code=status_code, **context)
        self.status_code = status_code


class ControlUnreachable(ControlAPIError, Transient):
    def __init__(self, url: str, detail: str) -> None:
        ControlAPIError.__init__(
            self,
            f"control at {url} is not reachable ({detail}): start it with `atom server` or set ATOM_URL",
            status_code=503,
            url=url,
        )
        self.retry_after = 1.0
