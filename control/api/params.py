"""Path and query parameters checked at the edge: ids in the store's range, names by the Kubernetes rule."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

#: the largest id any store holds (a signed 64-bit integer)
MAX_ID = 2**63 - 1
#: names of spaces and other objects that become Kubernetes names (RFC 1123 label, 63 characters)
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: names of objects that are only ever looked up (may contain dots and underscores, or be an id)
REF_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"

RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="a run id")]
ServiceId = Annotated[int, Path(ge=1, le=MAX_ID, description="a service id")]
SpaceName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=63,
        pattern=REF_PATTERN,
        description="a space name (lower-case letters, digits and '-', at most 63) or its id",
    ),
]
NewSpaceName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=63,
        pattern=NAME_PATTERN,
        description="lower-case letters, digits and '-', starting and ending with a letter or digit",
    ),
]
ObjectRef = Annotated[
    str,
    Path(min_length=1, max_length=128, pattern=REF_PATTERN, description="an object's name or its id"),
]
SpaceQuery = Annotated[
    str | None, Query(min_length=1, max_length=63, pattern=REF_PATTERN, description="only this space")
]
