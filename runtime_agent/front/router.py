"""The front's live routing state: the current table turned into version pools, switched atomically.

`Router.apply(table)` builds a new `Plan` (weighted versions, smooth round-robin state, mirror
counter) and swaps it in one assignment; a request holds the `VersionPool` it was given, so a
switch never touches requests already under way. Pools of versions a table dropped stay listed
(`inTable: false`) while they have requests in flight, and until the next switch after that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime_agent.front.balance import SmoothWeighted, VersionPool

if TYPE_CHECKING:
    from runtime_agent.front.routes import RoutingTable

__all__ = ["Plan", "Router"]


class Plan:
    """One routing table ready to route: who gets the next request, and whether to mirror it."""

    __slots__ = ("_mirror_seen", "_swrr", "epoch", "mirror", "mirror_percent", "table", "weighted")

    def __init__(self, table: RoutingTable, pools: dict[str, VersionPool], epoch: int) -> None:
        self.table = table
        self.epoch = epoch
        self.weighted = tuple(pools[v.version] for v in table.versions if v.weight > 0)
        self._swrr = SmoothWeighted([v.weight for v in table.versions if v.weight > 0])
        mirror = table.mirror
        self.mirror = pools[mirror.version] if mirror is not None and mirror.percent > 0 else None
        self.mirror_percent = mirror.percent if mirror is not None else 0
        self._mirror_seen = 0

    def choose(self) -> VersionPool:
        """The version that answers the next request (smooth weighted round-robin)."""
        return self.weighted[self._swrr.pick()]

    def mirror_to(self, primary: VersionPool) -> VersionPool | None:
        """The candidate to copy this request to, for exactly `percent` of every 100 eligible requests.

        Requests the candidate itself answers are not eligible (nothing to compare).
        """
        candidate = self.mirror
        if candidate is None or candidate is primary:
            return None
        n = self._mirror_seen
        self._mirror_seen = n + 1
        due = (n + 1) * self.mirror_percent // 100 > n * self.mirror_percent // 100
        return candidate if due else None


class Router:
    """Holds the current `Plan` and every version pool that still matters."""

    def __init__(self) -> None:
        self.plan: Plan | None = None
        self.epoch = 0
        self._pools: dict[str, VersionPool] = {}

    @property
    def table(self) -> RoutingTable | None:
        """The routing table in force, if any."""
        return self.plan.table if self.plan is not None else None

    def apply(self, table: RoutingTable) -> Plan:
        """Switch to `table` (already validated): one assignment, nothing half-switched."""
        named = {v.version for v in table.versions}
        pools = {name: p for name, p in self._pools.items() if name in named or not p.idle()}
        for v in table.versions:
            pool = pools.get(v.version) or VersionPool(v.version)
            pool.update(v.weight, v.replicas)
            pools[v.version] = pool
        for name, pool in pools.items():
            if name not in named:
                pool.weight = 0
        self.epoch += 1
        plan = Plan(table, pools, self.epoch)
        self._pools, self.plan = pools, plan
        return plan

    def view(self) -> dict[str, Any]:
        """The per-version and per-replica part of `GET stats`."""
        table = self.table
        named = {v.version for v in table.versions} if table is not None else set()
        return {
            "service": table.service if table is not None else None,
            "epoch": self.epoch,
            "versions": [p.view(in_table=name in named) for name, p in self._pools.items()],
        }
