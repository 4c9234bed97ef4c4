"""Version and replica choice: exact weighted shares, least outstanding replicas, exact mirror shares."""

from __future__ import annotations

from collections import Counter

from runtime_agent.front.balance import SmoothWeighted, VersionPool
from runtime_agent.front.router import Router
from runtime_agent.front.routes import parse_table
from runtime_agent.front.stats import Counters, percentile


def test_smooth_weighted_round_robin_gives_exact_shares_interleaved() -> None:
    swrr = SmoothWeighted([10, 90])
    picks = [swrr.pick() for _ in range(1000)]
    assert Counter(picks) == {0: 100, 1: 900}
    assert max(len(run) for run in "".join(map(str, picks)).split("0")) <= 9  # spread, not bunched

    three = SmoothWeighted([50, 30, 20])
    assert Counter(three.pick() for _ in range(100)) == {0: 50, 1: 30, 2: 20}


def test_least_outstanding_replica_with_round_robin_ties() -> None:
    pool = VersionPool("1")
    pool.update(100, ["http://a:1", "http://b:1", "http://c:1"])
    a, b, c = pool.replicas
    assert [getattr(pool.choose(), "url", None) for _ in range(4)] == [
        "http://a:1",
        "http://b:1",
        "http://c:1",
        "http://a:1",
    ]
    a.counters.start()
    b.counters.start()
    assert {pool.choose() for _ in range(5)} == {c}  # a and b are busy
    assert pool.choose(exclude=[c]) in (a, b)
    c.refused()  # a refused connection: passed over while another can answer
    c.counters.start()
    c.counters.start()
    assert pool.choose() is not c
    assert pool.choose(exclude=[a, b]) is c  # ... unless it is the only one left
    assert pool.choose(exclude=[a, b, c]) is None


def test_replica_counters_survive_a_new_table_and_dropped_busy_replicas_stay_listed() -> None:
    pool = VersionPool("1")
    pool.update(100, ["http://a:1", "http://b:1"])
    a, b = pool.replicas
    started = b.counters.start()
    pool.update(100, ["http://a:1", "http://c:1"])
    assert pool.replicas[0] is a and pool.retired == {"http://b:1": b} and not b.in_table
    b.counters.finish(started, error=False)
    pool.update(100, ["http://a:1", "http://c:1"])
    assert pool.retired == {}


def test_mirror_share_is_exact_and_the_candidate_never_mirrors_to_itself() -> None:
    router = Router()
    plan = router.apply(
        parse_table(
            {
                "service": "s",
                "versions": [
                    {"version": "1", "weight": 100, "replicas": ["http://a:1"]},
                    {"version": "2", "weight": 0, "replicas": ["http://b:1"]},
                ],
                "mirror": {"version": "2", "percent": 25},
            }
        )
    )
    primary = plan.choose()
    assert primary.version == "1"
    due = [plan.mirror_to(primary) is not None for _ in range(1000)]
    assert sum(due) == 250 and sum(due[:4]) == 1
    assert plan.mirror is not None and plan.mirror_to(plan.mirror) is None


def test_dropped_versions_stay_while_busy_and_go_at_the_next_switch_once_idle() -> None:
    router = Router()
    two = {
        "service": "s",
        "versions": [
            {"version": "1", "weight": 50, "replicas": ["http://a:1"]},
            {"version": "2", "weight": 50, "replicas": ["http://b:1"]},
        ],
    }
    one = {"service": "s", "versions": [{"version": "1", "weight": 100, "replicas": ["http://a:1"]}]}
    plan = router.apply(parse_table(two))
    busy = next(p for p in plan.weighted if p.version == "2")
    started = busy.counters.start()
    router.apply(parse_table(one))
    [v1, v2] = router.view()["versions"]
    assert (v2["version"], v2["inTable"], v2["weight"], v2["inFlight"]) == ("2", False, 0, 1)
    busy.counters.finish(started, error=False)
    router.apply(parse_table(one))
    assert [v["version"] for v in router.view()["versions"]] == ["1"]


def test_counters_and_percentiles() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 0.99) == 99.0
    c = Counters()
    t = c.start()
    c.finish(t, error=True)
    view = c.view()
    assert (view["requests"], view["errors"], view["inFlight"]) == (1, 1, 0)
    assert view["p50Ms"] is not None and view["p50Ms"] >= 0
