"""Bodies of the service key routes and of the serving process's access checks."""

from __future__ import annotations

from pydantic import Field

from control.schemas._base import Wire


class ServiceKey(Wire):
    """A service's new inference key: shown in this answer only, stored as a hash."""

    service_id: int
    service_name: str
    key: str
    """Send as `Authorization: Bearer <key>`; the former key stops working within seconds."""


class ServiceAccessPatch(Wire):
    """`PATCH /api/v1/services/{id}`: whether the service answers without a token."""

    public: bool


class ServiceAccess(Wire):
    """What a serving process needs to admit a caller (fetched with its service token)."""

    public: bool
    """True: every inference route answers without a token."""
    key_hashes: list[str] = Field(default_factory=list, max_length=4)
    """sha256 hex digests of the keys that open the service."""
    anonymous: bool = False
    """Control requires no login (single-user install): a caller without a token is its local admin."""


class TokenCheck(Wire):
    """A bearer token the serving process does not know; control says whether it opens the service."""

    token: str = Field(min_length=1, max_length=512)


class TokenVerdict(Wire):
    allowed: bool
    status: int = 200
    """401 (no valid token) or 403 (valid, but not for this service's space) when not allowed."""
    reason: str = ""
