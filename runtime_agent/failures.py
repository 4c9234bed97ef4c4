"""Why a run failed, as control's retry policy sees it (`control.schemas.pipeline.FailureClass`).

The agent classifies the exception that ended the run: the operator's own code raising is a
USER error, a bad spec or configuration a SPEC error (both terminal), a store or control that
could not be reached a CONNECTION error and a timeout a TIMEOUT (both retried by control while
the node has retries left). An operator opts in to retries of its own errors with operatorConf
`retryOnUserError: true` or a class attribute `retry_on_user_error = True`.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any

from connectors.errors import ConfigError, Permanent, SourceUnavailable, Transient
from control.schemas.pipeline import FailureClass
from runtime_agent.errors import OperatorFailed, OperatorLoadError

CONNECTION_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENOTCONN,
        errno.ETIMEDOUT,
    }
)
OPT_IN = "retryOnUserError"
"""operatorConf key: retry the run when the operator's own code raised."""


@dataclass(frozen=True)
class Failure:
    failure_class: FailureClass
    retryable: bool | None = None
    """True: the operator opted in to retries of its own (USER) errors; None: control decides."""


def _timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return True
    try:
        import httpx  # the agent's calls to control
    except ImportError:  # pragma: no cover - httpx ships with the agent
        return False
    return isinstance(exc, httpx.TimeoutException)


def _connection(exc: BaseException) -> bool:
    if isinstance(exc, SourceUnavailable | ConnectionError):
        return True
    if isinstance(exc, OSError) and exc.errno in CONNECTION_ERRNOS:
        return True
    try:
        import httpx
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, httpx.TransportError)


def classify_exception(exc: BaseException) -> FailureClass:
    """The class of the exception that ended a run (not counting a user's opt-in)."""
    if isinstance(exc, OperatorFailed):
        return FailureClass.USER
    if isinstance(exc, OperatorLoadError | ConfigError):
        return FailureClass.SPEC
    if _timeout(exc):
        return FailureClass.TIMEOUT
    if _connection(exc):
        return FailureClass.CONNECTION
    if isinstance(exc, Transient):
        return FailureClass.CONNECTION
    if isinstance(exc, Permanent):  # a missing table, a refused password: the spec names them
        return FailureClass.SPEC
    return FailureClass.USER


def _true(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


def opted_in(operator_conf: dict[str, Any], op: Any = None) -> bool:
    """Whether the operator asked for retries of its own errors (operatorConf or class attribute)."""
    if _true(operator_conf.get(OPT_IN, False)):
        return True
    for obj in (op, getattr(op, "legacy", None)):
        if obj is not None and getattr(obj, "retry_on_user_error", False) is True:
            return True
    return False


def classify(exc: BaseException, *, operator_conf: dict[str, Any] | None = None, op: Any = None) -> Failure:
    """What the agent reports with a failed run: the class, and `retryable` for an opted-in USER error."""
    kind = classify_exception(exc)
    if kind == FailureClass.USER and opted_in(operator_conf or {}, op):
        return Failure(kind, True)
    return Failure(kind)
