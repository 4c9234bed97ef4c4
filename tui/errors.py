"""The dashboard's subtree of Atom's error hierarchy (root: `connectors.errors.AtomError`).

```
TuiError
└─ Unavailable(Transient)   control is down or refuses the token; the banner says which
```
"""

from __future__ import annotations

from connectors.errors import AtomError, Transient


class TuiError(AtomError):
    """Base of the errors the dashboard raises."""


class Unavailable(TuiError, Transient):
    """Control cannot be used right now; `kind` is `unreachable` or `auth`."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message, kind=kind)
        self.kind = kind
