"""REDIS control plane: the redis-py asyncio client, the cluster topology, key naming, error mapping.

Small commands (ping, objects, TYPE, schema keys, single-key element reads) go through redis-py's
native asyncio client, `redis.asyncio.Redis` for SINGLE or `redis.asyncio.cluster.RedisCluster`
for GROUP (addr/port is a seed node). Bulk rows go over `_redis_resp` sockets per primary, which
need the `Topology`: the primaries, and which one owns each of the 16384 hash slots.

Atom's own keys all contain `__atom_` (reads skip such keys): the sink's schema key
`<prefix>__atom_schema`, run sets `<prefix>__atom_run:<run key>`, staging keys and object
metadata. In SINGLE mode they sit under the prefix they belong to (so an ACL rule `~orders:*`
covers them); in GROUP mode a staging or metadata key must live in the same hash slot as its key
(RENAME and MULTI need that), so it starts with a `{tag}` whose slot is the key's slot
(`companion`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from redis import exceptions as rx
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from connectors._redis_resp import Endpoint, RedisSettings, translate_reply_error
from connectors.errors import (
    AuthenticationFailed,
    ConnectorError,
    PermissionDenied,
    RequestRejected,
    SourceUnavailable,
)

SLOTS = 16384
MARK = "__atom_"
"""Every key Atom keeps for itself contains this; reads skip such keys."""
SCHEMA_SUFFIX = "__atom_schema"
RUN_INFIX = "__atom_run:"

Client = Redis | RedisCluster


def make_client(s: RedisSettings) -> Client:
    """The redis-py asyncio client for these settings (no I/O yet; no retries of its own)."""
    common: dict[str, Any] = {
        "username": s.username or None,
        "password": s.password or None,
        # None: redis-py 8's own read timeout can swallow a task's cancellation (a cancelled
        # reader then never stops); callers bound each call with asyncio.timeout instead.
        "socket_timeout": None,
        "socket_connect_timeout": s.connect_timeout,
        "retry": Retry(NoBackoff(), 0),
        "client_name": s.client_name,
    }
    if s.ssl:
        common["ssl"] = True
        for name in ("ca_certs", "certfile", "keyfile", "cert_reqs", "check_hostname"):
            if name in s.ssl_options:
                common[f"ssl_{name}"] = s.ssl_options[name]
    if s.cluster:
        return RedisCluster(host=s.host, port=s.port, **common)
    if s.unix_socket:
        return Redis(unix_socket_path=s.unix_socket, db=s.db, **common)
    return Redis(host=s.host, port=s.port, db=s.db, **common)


def translate(exc: BaseException, where: str, doing: str, target: str = "") -> ConnectorError:
    """The typed error for a redis-py (or socket) exception raised while `doing`."""
    thing = f" {target!r}" if target else ""
    if isinstance(exc, ConnectorError):
        return exc
    causes = _chain(exc)
    if any(isinstance(e, rx.AuthenticationError | rx.AuthenticationWrongNumberOfArgsError) for e in causes):
        return AuthenticationFailed(f"{where} refused the login: check the account (ACL user) and password")
    if any(isinstance(e, rx.NoPermissionError) for e in causes):
        return PermissionDenied(
            f"{where}: the ACL user may not do this ({doing}{thing}): {exc}; grant it or use another user"
        )
    if isinstance(exc, rx.ResponseError):
        return translate_reply_error(str(exc), where, doing, target)
    if isinstance(exc, rx.ConnectionError | rx.TimeoutError | rx.RedisClusterException | OSError):
        return SourceUnavailable(
            f"{where} is unreachable or dropped the connection while {doing} ({exc}): "
            "check the server is up, then retry"
        )
    return RequestRejected(f"{where} failed while {doing}{thing}: {exc}")


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what caused it (redis-py wraps a login error in a ConnectionError on some paths)."""
    out: list[BaseException] = []
    while exc is not None and exc not in out and len(out) < 10:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return out


@dataclass(frozen=True)
class Topology:
    """The primaries to read from and write to, and (GROUP) the owner of each hash slot.

    Attributes:
        nodes: primaries, sorted by `host:port`.
        owner: slot -> index into `nodes` (None for SINGLE).
    """

    nodes: list[Endpoint]
    owner: np.ndarray | None = None

    @property
    def cluster(self) -> bool:
        return self.owner is not None

    def node_of(self, key: bytes) -> int:
        return 0 if self.owner is None else int(self.owner[key_slot(key)])


async def topology(s: RedisSettings, client: Client) -> Topology:
    """Discover the primaries (GROUP: from the cluster's slot map)."""
    if not isinstance(client, RedisCluster):
        return Topology([Endpoint(s.host, s.port, s.unix_socket)])
    await client.initialize()
    slots = client.nodes_manager.slots_cache
    primaries = sorted({(n.host, int(n.port)) for n in client.get_primaries()})
    index = {p: i for i, p in enumerate(primaries)}
    owner = np.full(SLOTS, -1, np.int32)
    for slot, nodes in slots.items():
        owner[slot] = index.get((nodes[0].host, int(nodes[0].port)), -1)
    if (owner < 0).any():
        raise SourceUnavailable(
            f"{s.where}: {int((owner < 0).sum())} hash slots have no primary (cluster_state is not ok): "
            "fix the cluster, then retry"
        )
    return Topology([Endpoint(h, p) for h, p in primaries], owner)


@functools.cache
def slot_tags() -> tuple[bytes, ...]:
    """For each hash slot, a short tag whose slot it is (`{tag}...` keys land in that slot)."""
    tags: list[bytes | None] = [None] * SLOTS
    missing = SLOTS
    i = 0
    while missing:
        tag = b"%x" % i
        slot = key_slot(tag)
        if tags[slot] is None:
            tags[slot] = tag
            missing -= 1
        i += 1
    return tuple(t or b"" for t in tags)


def companion(key: bytes, kind: bytes, cluster: bool) -> bytes:
    """A key of `kind` (e.g. `__atom_meta:`) for `key`, in the same hash slot as `key`.

    SINGLE: `<key><kind>`, so ACL key patterns that cover `key` cover it too. GROUP:
    `{tag}<kind><key>`, where the tag hashes to `key`'s slot.
    """
    if not cluster:
        return key + kind
    return b"{" + slot_tags()[key_slot(key)] + b"}" + kind + key


def glob_escape(text: str) -> str:
    """`text` as a literal in a SCAN MATCH pattern."""
    out = []
    for ch in text:
        if ch in "*?[]\\":
            out.append("\\")
        out.append(ch)
    return "".join(out)


def is_pattern(text: str) -> bool:
    """Whether `text` holds glob characters (else it is a key or a prefix)."""
    return any(ch in text for ch in "*?[")


def literal_prefix(pattern: str) -> str:
    """The part of a glob pattern before its first glob character (escapes resolved)."""
    out = []
    escaped = False
    for ch in pattern:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in "*?[":
            break
        else:
            out.append(ch)
    return "".join(out)
