"""The DAG of an exam and its trigger rules. Pure: no store, no I/O.

Nodes are ids; an edge `(a, b)` means b waits for a. `order` sorts nodes upstream first,
`cycle` names a cycle's path, and `decide` says what a waiting node does given how its
upstream runs ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from control.schemas.pipeline import TriggerRule

Edge = tuple[int, int]

CACHED_PREFIX = "cached:"
"""A run skipped with a reason starting so was served from cache: it counts as succeeded."""


def upstream_of(nodes: Iterable[int], edges: Iterable[Edge]) -> dict[int, list[int]]:
    """Each node's upstream nodes (sorted), counting only edges between `nodes`."""
    ids = set(nodes)
    ups: dict[int, list[int]] = {n: [] for n in sorted(ids)}
    for a, b in edges:
        if a in ids and b in ids and a != b and a not in ups[b]:
            ups[b].append(a)
    for n in ups:
        ups[n].sort()
    return ups


def cycle(edges: Iterable[Edge]) -> list[int] | None:
    """A cycle's path, first node repeated at the end (`[a, b, c, a]`), or None when there is none."""
    nxt: dict[int, list[int]] = {}
    for a, b in edges:
        nxt.setdefault(a, []).append(b)
    for k in nxt:
        nxt[k].sort()
    color: dict[int, int] = {}  # 1: on the current path, 2: done
    for start in sorted(nxt):
        if color.get(start):
            continue
        path: list[int] = [start]
        color[start] = 1
        stack: list[Iterator[int]] = [iter(nxt.get(start, ()))]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                color[path.pop()] = 2
                continue
            state = color.get(child, 0)
            if state == 1:
                return path[path.index(child) :] + [child]
            if state == 0:
                color[child] = 1
                path.append(child)
                stack.append(iter(nxt.get(child, ())))
    return None


def order(nodes: Iterable[int], edges: Iterable[Edge]) -> list[int]:
    """`nodes` upstream first (Kahn's order; ties by id, so stable).

    Raises:
        ValueError: the edges between `nodes` form a cycle (`cycle` names it).
    """
    ups = upstream_of(nodes, edges)
    downs: dict[int, list[int]] = {n: [] for n in ups}
    for n, us in ups.items():
        for u in us:
            downs[u].append(n)
    need = {n: len(us) for n, us in ups.items()}
    ready = sorted(n for n, k in need.items() if k == 0)
    out: list[int] = []
    while ready:
        level = ready
        ready = []
        for n in level:
            out.append(n)
            for d in downs[n]:
                need[d] -= 1
                if need[d] == 0:
                    ready.append(d)
        ready.sort()
    if len(out) != len(ups):
        raise ValueError("the DAG has a cycle")
    return out


def path_text(path: Sequence[int], names: Mapping[int, str]) -> str:
    return " -> ".join(names.get(n, str(n)) for n in path)


# -- trigger rules ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """How one upstream run stands: its node name, state and reason."""

    name: str
    state: str
    reason: str = ""

    @property
    def ended(self) -> bool:
        return self.state in ("succeeded", "failed", "stopped", "skipped")

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded" or (
            self.state == "skipped" and self.reason.startswith(CACHED_PREFIX)
        )


@dataclass(frozen=True)
class Decision:
    action: Literal["wait", "run", "skip"]
    reason: str = ""


def decide(rule: TriggerRule | str, upstream: Sequence[Upstream], *, missing: int = 0) -> Decision:
    """What a node waiting for `upstream` does now, by its trigger rule.

    A skipped upstream run (not a cache hit) counts as not succeeded, so skips propagate down
    an all_success chain. `missing` upstream runs that no longer exist count as failed.
    """
    rule = TriggerRule(rule)
    if missing:
        return Decision("skip", f"{missing} upstream run(s) no longer exist")
    if not all(u.ended for u in upstream):
        return Decision("wait")
    names = ", ".join(u.name for u in upstream)
    if rule == TriggerRule.ALL_SUCCESS:
        bad = next((u for u in upstream if not u.succeeded), None)
        if bad is None:
            return Decision("run", f"upstream {names} succeeded")
        return Decision("skip", f"upstream {bad.name} {bad.state} (trigger rule {rule.value})")
    if rule == TriggerRule.ALL_DONE:
        return Decision("run", f"upstream {names} done (trigger rule {rule.value})")
    failed = [u.name for u in upstream if u.state == "failed"]
    if failed:
        return Decision("run", f"upstream {', '.join(failed)} failed (trigger rule {rule.value})")
    return Decision("skip", f"no upstream run failed (trigger rule {rule.value})")
