"""The front's routing table: which versions of one service get which share of traffic, on which replicas.

Control pushes it (`PUT /_atom/front/routes`); the front keeps it in its state file. Wire form
(camelCase like the rest of the API)::

    {"service": "reasoning-churn-3",
     "versions": [{"version": "2", "weight": 90, "replicas": ["http://127.0.0.1:41001"]},
                  {"version": "3", "weight": 10, "replicas": ["http://127.0.0.1:41003"]}],
     "mirror": {"version": "3", "percent": 25}}

`parse_table` refuses a bad table with one `RouteError` whose message names the field.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

__all__ = ["MirrorRoute", "RouteError", "RoutingTable", "VersionRoute", "describe", "parse_table"]


class RouteError(ValueError):
    """A routing table the front refuses; the message names the field."""


class _Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        str_strip_whitespace=True,
        frozen=True,
    )

    def wire(self) -> dict[str, Any]:
        """The JSON-ready dict with camelCase keys."""
        return self.model_dump(mode="json", by_alias=True)


def _percent(value: int, what: str) -> int:
    if not 0 <= value <= 100:
        raise ValueError(f"{what} {value} is outside 0-100")
    return value


class VersionRoute(_Wire):
    """One model version: its share of the traffic and the replicas that serve it."""

    version: str = Field(min_length=1, max_length=64)
    weight: int
    """Percent of the requests (0-100); all versions' weights sum to 100. 0 drains the version."""
    replicas: tuple[str, ...] = ()
    """Base URLs of `atom-runtime serve` processes (`http://host:port`)."""

    @field_validator("weight")
    @classmethod
    def _weight(cls, value: int) -> int:
        return _percent(value, "weight")

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        urls = []
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url!r} is not an http(s)://host:port address")
            if parts.path.strip("/") or parts.query or parts.fragment:
                raise ValueError(f"{url!r} has a path or query: give the replica's base address only")
            urls.append(url.rstrip("/"))
        if len(set(urls)) != len(urls):
            raise ValueError("a replica is listed twice")
        return tuple(urls)


class MirrorRoute(_Wire):
    """Copy `percent`% of the inference requests to a candidate version; only the primary answers."""

    version: str = Field(min_length=1, max_length=64)
    percent: int

    @field_validator("percent")
    @classmethod
    def _percent(cls, value: int) -> int:
        return _percent(value, "percent")


class RoutingTable(_Wire):
    """The versions behind one service name, their weights, and an optional mirror."""

    service: str = Field(min_length=1, max_length=255)
    versions: tuple[VersionRoute, ...]
    mirror: MirrorRoute | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RoutingTable:
        seen: set[str] = set()
        for i, v in enumerate(self.versions):
            if v.version in seen:
                raise ValueError(f"versions[{i}].version: version {v.version!r} is listed twice")
            seen.add(v.version)
            if v.weight > 0 and not v.replicas:
                raise ValueError(
                    f"versions[{i}].replicas: version {v.version!r} has weight {v.weight} but no replicas"
                )
        total = sum(v.weight for v in self.versions)
        if total != 100:
            raise ValueError(f"versions: the weights sum to {total}, not 100")
        if self.mirror is not None:
            candidate = self.version(self.mirror.version)
            if candidate is None:
                raise ValueError(
                    f"mirror.version: {self.mirror.version!r} is not a version of the table"
                    f" (versions: {', '.join(sorted(seen))})"
                )
            if not candidate.replicas:
                raise ValueError(f"mirror.version: version {candidate.version!r} has no replicas")
            if candidate.weight == 100:
                raise ValueError(
                    f"mirror.version: version {candidate.version!r} takes 100% of the traffic;"
                    " mirror to a version that is not the primary"
                )
        return self

    def version(self, name: str) -> VersionRoute | None:
        """The route of version `name`, if the table has it."""
        return next((v for v in self.versions if v.version == name), None)


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_table(data: bytes | str | dict[str, Any]) -> RoutingTable:
    """Validate a routing table (JSON text or a decoded dict).

    Raises:
        RouteError: the table is refused; the message names the field at fault.
    """
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RouteError(f"the routing table is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RouteError("the routing table must be a JSON object")
    try:
        return RoutingTable.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = _where(tuple(first.get("loc", ())))
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        raise RouteError(msg if not where else f"{where}: {msg}") from None


def describe(table: RoutingTable) -> str:
    """One log line's worth: versions, weights and replica counts, and the mirror (no secrets)."""
    versions = ", ".join(
        f"{v.version}={v.weight}% ({len(v.replicas)} replica{'s' * (len(v.replicas) != 1)})"
        for v in table.versions
    )
    mirror = f"; mirror {table.mirror.percent}% to {table.mirror.version}" if table.mirror else ""
    return f"versions {versions}{mirror}"
