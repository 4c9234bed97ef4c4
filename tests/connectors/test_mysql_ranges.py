"""The MYSQL range window without a server: every key comes back once, in order, however keys are spread."""

from __future__ import annotations

import bisect
import random
from concurrent.futures import Future

import pyarrow as pa
import pytest

from connectors._mysql_ranges import RangeWindow


def _keys(seed: int) -> list[int]:
    rng = random.Random(seed)
    keys: list[int] = []
    at = rng.randint(-50, 50)
    for _ in range(rng.randint(1, 6)):  # runs of different density, separated by gaps
        step = rng.choice([1, 1, 2, 7, 1000])
        for _ in range(rng.randint(0, 400)):
            at += rng.randint(1, step)
            keys.append(at)
        at += rng.choice([0, 10, 10**6, 10**15])
    return keys


def _drain(keys: list[int], after: int, *, width: int, rows: int, density: float) -> tuple[list[int], int]:
    queries = 0

    def submit(low: int, high: int, limit: int) -> Future[pa.Table]:
        nonlocal queries
        queries += 1
        start, stop = bisect.bisect_right(keys, low), bisect.bisect_right(keys, high)
        future: Future[pa.Table] = Future()
        future.set_result(pa.table({"id": keys[start:stop][:limit]}))
        return future

    def probe(value: int) -> int | None:
        i = bisect.bisect_right(keys, value)
        return keys[i] if i < len(keys) else None

    window = RangeWindow(
        after=after,
        density=density,
        max_key=keys[-1],
        rows_per_range=rows,
        cap=2 * rows,
        width=width,
        submit=submit,
        last_key=lambda t: t.column("id")[-1].as_py(),
        probe=probe,
    )
    got: list[int] = []
    while (table := window.next()) is not None:
        assert window.after >= (got[-1] if got else after)
        got.extend(table.column("id").to_pylist())
        assert not got or got[-1] <= window.after
    assert window.after >= keys[-1]
    return got, queries


@pytest.mark.parametrize("seed", range(60))
def test_every_key_once_in_order(seed: int) -> None:
    keys = _keys(seed)
    if not keys:
        return
    rng = random.Random(seed)
    after = rng.choice([keys[0] - 1, keys[len(keys) // 2]])
    got, _ = _drain(
        keys, after, width=rng.choice([2, 3, 4]), rows=rng.choice([1, 5, 50]), density=rng.random()
    )
    assert got == [k for k in keys if k > after]


def test_gaps_cost_one_probe_not_many_queries() -> None:
    keys = list(range(1, 101)) + [10**15 + i for i in range(100)]
    got, queries = _drain(keys, 0, width=2, rows=25, density=1.0)
    assert got == keys and queries < 20
