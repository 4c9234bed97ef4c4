"""Object-store error answers (S3 and OSS share the codes) mapped to connector errors, one line each.

The stores answer errors with a code (`NoSuchKey`, `SignatureDoesNotMatch`, ...) and an HTTP
status; `store_error` picks the connector error: missing bucket/key -> TargetNotFound, refused
key or signature -> AuthenticationFailed, forbidden -> PermissionDenied, throttling and 5xx ->
SourceUnavailable (retried by the read layer), anything else -> RequestRejected. Messages name
the bucket/key and the endpoint (never the secret) and say what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.errors import (
    AuthenticationFailed,
    ConnectorError,
    PermissionDenied,
    RequestRejected,
    SourceUnavailable,
    TargetNotFound,
)

if TYPE_CHECKING:
    from connectors._objects import ObjectStoreConnector

AUTH_CODES = frozenset(
    [
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "InvalidSecurityToken",
        "SecurityTokenExpired",
        "InvalidClientTokenId",
        "AuthorizationHeaderMalformed",
        "RequestTimeTooSkewed",
        "InvalidObjectState.Auth",
    ]
)
DENIED_CODES = frozenset(["AccessDenied", "AllAccessDisabled", "AccountProblem", "UserDisable", "Forbidden"])
TRANSIENT_CODES = frozenset(
    [
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "RequestLimitExceeded",
        "OperationAborted",
    ]
)


def store_error(
    conn: ObjectStoreConnector, code: str, status: int, key: str, doing: str, detail: str = ""
) -> ConnectorError:
    """The connector error for an error answer of an S3-like store (`code`, HTTP `status`)."""
    code = code or str(status)
    where = conn.where(key)
    if code == "NoSuchBucket":
        return TargetNotFound(
            f"bucket {conn.bucket} does not exist ({conn.config.describe()}): create it or fix connectSpace",
            key=key,
        )
    if code in ("NoSuchKey", "NotFound", "404"):
        return TargetNotFound(
            f"object {conn.where(key)} does not exist: check the key and the bucket", key=key
        )
    if code == "PreconditionFailed" or status == 412:
        from connectors.cache import ObjectChanged  # deferred: only ranged reads send If-Match

        return ObjectChanged(
            f"{where} changed while it was read (its ETag moved on); it is fetched again", key=key
        )
    if code in AUTH_CODES:
        return AuthenticationFailed(
            f"{conn.config.describe()} refused the access key ({code}) while {doing} {conn.uri(key)}: "
            "check the connection's account (access key id) and password (secret)",
            code=code,
        )
    if code in DENIED_CODES or status == 403:
        return PermissionDenied(
            f"the access key of {conn.config.describe()} may not do this while {doing} {conn.uri(key)} "
            f"({code}): grant it access to the bucket/key or use another key",
            code=code,
        )
    if code in TRANSIENT_CODES or status >= 500 or status == 429:
        return SourceUnavailable(f"{where} is unavailable while {doing} ({code}); retry later", code=code)
    extra = f": {detail.splitlines()[0]}" if detail else ""
    return RequestRejected(f"{where}: the store refused {doing} ({code}{extra})", code=code)
