"""Root of Atom's one error hierarchy; every package adds its subtree under `AtomError`.

```
AtomError                                   # root; picklable, crosses Ray and process boundaries
├─ Transient (retry_after)                  # worth retrying later
├─ Permanent                                # retrying will not help
│   └─ ConfigError                          # a bad spec, setting or argument
└─ ConnectorError                           # connectors/ (this module)
    ├─ UnknownConnector(Permanent)          # connectType not in the registry
    ├─ ConnectorNotInstalled(Permanent)     # the SDK behind a connector is missing
    ├─ SourceUnavailable(Transient)         # store unreachable, connection dropped
    │   └─ ObjectChanged                    # a remote object changed while it was downloaded
    ├─ AuthenticationFailed(Permanent)      # wrong account or password
    ├─ PermissionDenied(Permanent)          # authenticated, but may not read/write that
    │   └─ OutsideRoot(ConnectorConfigError) # a FILE path that leaves its connection's root folder
    ├─ TargetNotFound(Permanent)            # table, key, object or file missing
    ├─ BatchDecodeError(Permanent)          # data that cannot be turned into a DataFrame
    │   └─ SchemaChanged                    # the columns changed between two pages of one read
    ├─ RequestRejected(Permanent)           # the store refused a query or rows (syntax, constraint)
    └─ ConnectorConfigError(ConfigError)    # a setting that cannot work (no paging key, bad format)
        ├─ CacheDiskFull(Permanent)         # the file cache's disk is full / object over the limit
        └─ UnsafeArchive                    # a tar/zip member that would land outside its folder
control/errors.py:       ControlError subtree (NotFound, Conflict, InvalidTransition, ...)
runtime_agent/errors.py: OperatorError subtree (OperatorLoadError, OperatorFailed, ...)
```

Every message is one line that names the thing and says what to do; secrets never
appear in it.
"""

from __future__ import annotations

from typing import Any


class AtomError(Exception):
    """Root of every error Atom raises on purpose."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.context))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[AtomError], message: str, context: dict[str, Any]) -> AtomError:
    err = cls.__new__(cls)
    AtomError.__init__(err, message, **context)
    for key, value in context.items():
        setattr(err, key, value)
    return err


class Transient(AtomError):
    """A failure that may pass: retry after `retry_after` seconds (None: caller's backoff)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **context: Any) -> None:
        super().__init__(message, retry_after=retry_after, **context)
        self.retry_after = retry_after


class Permanent(AtomError):
    """A failure that retrying will not fix."""


class ConfigError(Permanent):
    """A bad spec, setting or argument given by the user."""


class ConnectorError(AtomError):
    """Base of every error raised by a connector."""


class UnknownConnector(ConnectorError, Permanent):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"unknown connectType {name!r}: valid values are {', '.join(sorted(known))}",
            name=name,
            known=known,
        )


class ConnectorNotInstalled(ConnectorError, Permanent):
    def __init__(self, name: str, hint: str) -> None:
        super().__init__(f"connector {name!r} needs a package that is not installed: {hint}", name=name)


class SourceUnavailable(ConnectorError, Transient):
    """The store cannot be reached (refused, timed out, dropped mid-read)."""


class AuthenticationFailed(ConnectorError, Permanent):
    """The store refused the account or password."""


class PermissionDenied(ConnectorError, Permanent):
    """The account may not read or write the target."""


class TargetNotFound(ConnectorError, Permanent):
    """The table, key, object or file does not exist."""


class BatchDecodeError(ConnectorError, Permanent):
    """Data that cannot be decoded into a DataFrame in the declared format."""


class SchemaChanged(BatchDecodeError):
    """The source's columns changed between two pages of one read (a column added, dropped or retyped)."""


class RequestRejected(ConnectorError, Permanent):
    """The store refused the request itself: bad SQL, a constraint or a column/type mismatch."""


class ConnectorConfigError(ConnectorError, ConfigError):
    """A connection or data-source setting that cannot work (no key to page by, unknown format)."""


class ObjectChanged(SourceUnavailable):
    """The remote object changed while it was downloaded (validator mismatch); fetch it again."""


class CacheDiskFull(ConnectorConfigError, Permanent):
    """The cache directory's disk has no room (ENOSPC), or an object exceeds the cache's size limit."""


class OutsideRoot(PermissionDenied, ConnectorConfigError):
    """A FILE path (`..`, an absolute path, a symlink) that leads outside its connection's root folder."""


class UnsafeArchive(ConnectorConfigError):
    """A tar or zip archive with a member that would land outside the folder it is unpacked into
    (`..`, an absolute name, a link pointing out, a device); the whole archive is refused."""
