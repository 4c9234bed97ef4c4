"""The exam DAG's layout, pure and terminal-free: layers by longest path, long edges through
invisible points, barycentre sweeps against crossings; a cycle is broken rather than followed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DagLayout:
    """Where each node goes: `layers[i]` lists layer i top to bottom. Node ids are positive; the
    negative ids are the points a long edge passes through (drawn as a line, never selectable)."""

    layers: list[list[int]]
    edges: list[tuple[int, int]]
    """Edges between neighbouring layers only (long edges split at their points)."""
    dropped: list[tuple[int, int]] = field(default_factory=list)
    """Edges left out because they would close a cycle."""

    def rank(self) -> dict[int, int]:
        return {key: i for i, layer in enumerate(self.layers) for key in layer}


def layout(ids: Sequence[int], edges: Iterable[tuple[int, int]], *, sweeps: int = 4) -> DagLayout:
    """Lay out nodes `ids` (positive) and `edges` (from, to) in layers, left to right.

    Edges naming unknown nodes, self-loops and duplicates are ignored.
    """
    order = list(dict.fromkeys(ids))
    index = {key: i for i, key in enumerate(order)}
    succ: dict[int, list[int]] = {key: [] for key in order}
    indeg = dict.fromkeys(order, 0)
    for u, v in dict.fromkeys(edges):
        if u in index and v in index and u != v:
            succ[u].append(v)
            indeg[v] += 1
    rank, kept, dropped = _rank(order, index, succ, indeg)
    for key in order:  # a source sits just before its nearest successor, not at the far left
        if all(v != key for _, v in kept) and succ[key]:
            targets = [rank[v] for u, v in kept if u == key]
            if targets:
                rank[key] = max(rank[key], min(targets) - 1)
    points, segments = _split_long(kept, rank)
    depth = max(rank.values(), default=-1) + 1
    layers: list[list[int]] = [[] for _ in range(depth)]
    for key in order:
        layers[rank[key]].append(key)
    for key, r in points.items():
        layers[r].append(key)
    return DagLayout(layers=_order(layers, segments, sweeps), edges=segments, dropped=dropped)


def _rank(
    order: list[int], index: dict[int, int], succ: dict[int, list[int]], indeg: dict[int, int]
) -> tuple[dict[int, int], list[tuple[int, int]], list[tuple[int, int]]]:
    """Longest-path layers by Kahn's algorithm; a cycle is broken at its earliest node."""
    rank = dict.fromkeys(order, 0)
    ready = [(index[key], key) for key in order if indeg[key] == 0]
    heapq.heapify(ready)
    done: set[int] = set()
    kept: list[tuple[int, int]] = []
    dropped: list[tuple[int, int]] = []
    while len(done) < len(order):
        if not ready:  # only cycles are left: start one at its earliest node
            key = min((k for k in order if k not in done), key=index.__getitem__)
            heapq.heappush(ready, (index[key], key))
        _, key = heapq.heappop(ready)
        if key in done:
            continue
        done.add(key)
        for v in succ[key]:
            if v in done:
                dropped.append((key, v))
                continue
            kept.append((key, v))
            rank[v] = max(rank[v], rank[key] + 1)
            indeg[v] -= 1
            if indeg[v] == 0:
                heapq.heappush(ready, (index[v], v))
    return rank, kept, dropped


def _split_long(
    kept: list[tuple[int, int]], rank: dict[int, int]
) -> tuple[dict[int, int], list[tuple[int, int]]]:
    points: dict[int, int] = {}
    segments: list[tuple[int, int]] = []
    for u, v in kept:
        prev = u
        for r in range(rank[u] + 1, rank[v]):
            point = -(len(points) + 1)
            points[point] = r
            segments.append((prev, point))
            prev = point
        segments.append((prev, v))
    return points, segments


def _order(layers: list[list[int]], segments: list[tuple[int, int]], sweeps: int) -> list[list[int]]:
    """Barycentre sweeps down and up; keeps the order with the fewest crossings."""
    preds: dict[int, list[int]] = {}
    succs: dict[int, list[int]] = {}
    for u, v in segments:
        succs.setdefault(u, []).append(v)
        preds.setdefault(v, []).append(u)
    best = [list(layer) for layer in layers]
    best_cross = crossings(best, segments)
    current = [list(layer) for layer in layers]
    for _ in range(sweeps):
        if best_cross == 0:
            break
        for down in (True, False):
            rng = range(1, len(current)) if down else range(len(current) - 2, -1, -1)
            for i in rng:
                ref = current[i - 1] if down else current[i + 1]
                pos = {key: j for j, key in enumerate(ref)}
                links = preds if down else succs
                ranked = []
                for j, key in enumerate(current[i]):
                    near = [pos[x] for x in links.get(key, []) if x in pos]
                    ranked.append((sum(near) / len(near) if near else float(j), j, key))
                current[i] = [key for _, _, key in sorted(ranked)]
            cross = crossings(current, segments)
            if cross < best_cross:
                best, best_cross = [list(layer) for layer in current], cross
    return best


def crossings(layers: list[list[int]], segments: list[tuple[int, int]]) -> int:
    """How many pairs of edges between neighbouring layers cross."""
    pos = {key: j for layer in layers for j, key in enumerate(layer)}
    rank = {key: i for i, layer in enumerate(layers) for key in layer}
    by_gap: dict[int, list[tuple[int, int]]] = {}
    for u, v in segments:
        by_gap.setdefault(rank[u], []).append((pos[u], pos[v]))
    total = 0
    for pairs in by_gap.values():
        for i, (a1, b1) in enumerate(pairs):
            for a2, b2 in pairs[i + 1 :]:
                total += (a1 - a2) * (b1 - b2) < 0
    return total
