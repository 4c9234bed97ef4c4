"""Seed 001's search-space JSON translated to Ray Tune domains: every type, q rounding, bounds, grids,
and wrong shapes refused with the parameter's path."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from ray import tune
from ray.tune.search.variant_generator import generate_variants

from runtime_agent.errors import SpecError
from runtime_agent.tune_space import Sampler, grid_size, plain, quantize, to_tune

N = 400


def samples(space: dict[str, Any], name: str, n: int = N, seed: int = 3) -> list[Any]:
    """`n` values of `name` drawn the way Tune's random search draws them."""
    rng = np.random.default_rng(seed)
    domain = to_tune(space, seed=seed)[name]
    out = []
    for _ in range(n):
        for _, variant in generate_variants({name: domain}, random_state=rng):
            out.append(plain(variant[name]))
    return out


def one(kind: str, value: list[Any]) -> dict[str, Any]:
    return {"p": {"_type": kind, "_value": value}}


def is_multiple(value: float, q: float) -> bool:
    return math.isclose(value / q, round(value / q), abs_tol=1e-9)


def test_the_seed_example_space() -> None:
    space = {
        "batch_size": {"_type": "choice", "_value": [16, 32, 64, 128]},
        "hidden_size": {"_type": "choice", "_value": [128, 256, 512, 1024]},
        "lr": {"_type": "choice", "_value": [0.0001, 0.001, 0.01, 0.1]},
        "momentum": {"_type": "uniform", "_value": [0, 1]},
    }
    domains = to_tune(space)
    assert isinstance(domains["lr"], tune.search.sample.Categorical)
    assert domains["lr"].categories == [0.0001, 0.001, 0.01, 0.1]
    assert set(samples(space, "batch_size")) == {16, 32, 64, 128}
    momentum = samples(space, "momentum")
    assert all(0 <= m <= 1 for m in momentum) and len(set(momentum)) > N // 2


def test_randint_excludes_the_upper_bound() -> None:
    values = samples(one("randint", [2, 5]), "p")
    assert set(values) == {2, 3, 4} and all(isinstance(v, int) for v in values)


def test_uniform_and_loguniform_stay_in_bounds() -> None:
    assert all(-1 <= v <= 3 for v in samples(one("uniform", [-1, 3]), "p"))
    logs = samples(one("loguniform", [1e-4, 1e-1]), "p")
    assert all(1e-4 <= v <= 1e-1 for v in logs)
    decades = {math.floor(math.log10(v)) for v in logs}
    assert decades == {-4, -3, -2}  # log-uniform: every decade is hit, not mostly the top one


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("quniform", [0, 10, 2.5]),
        ("quniform", [1, 10, 4]),
        ("qloguniform", [1, 100, 5]),
        ("qloguniform", [2, 64, 2]),
    ],
)
def test_q_types_round_to_q_and_clip_to_the_bounds(kind: str, value: list[float]) -> None:
    low, high, q = value
    got = samples(one(kind, value), "p")
    assert all(low <= v <= high for v in got)
    assert all(is_multiple(v, q) or v in (low, high) for v in got)
    assert len(set(got)) > 2


def test_quniform_follows_nni_where_tune_would_refuse_the_bounds() -> None:
    """Tune's quniform needs bounds divisible by q; NNI rounds then clips: [1, 10] by 4 gives 1, 4, 8
    (12 only for x = 10 exactly, clipped to 10)."""
    assert isinstance(to_tune(one("quniform", [1, 10, 4]))["p"], tune.search.sample.Function)
    assert isinstance(to_tune(one("quniform", [0, 12, 4]))["p"], tune.search.sample.Float)
    assert set(samples(one("quniform", [1, 10, 4]), "p")) == {1.0, 4.0, 8.0}


def test_normal_types() -> None:
    normal = samples(one("normal", [10, 2]), "p")
    assert abs(float(np.mean(normal)) - 10) < 0.5 and 1.5 < float(np.std(normal)) < 2.5
    qnormal = samples(one("qnormal", [0, 1, 0.5]), "p")
    assert all(is_multiple(v, 0.5) for v in qnormal)
    lognormal = samples(one("lognormal", [0, 0.5]), "p")
    assert all(v > 0 for v in lognormal)
    assert abs(float(np.mean(np.log(lognormal)))) < 0.1
    qlognormal = samples(one("qlognormal", [2, 0.5, 1]), "p")
    assert all(v >= 0 and float(v).is_integer() for v in qlognormal)


def test_samplers_with_a_seed_repeat_and_pickle() -> None:
    import pickle

    a = [Sampler("lognormal", [0, 1], seed=7)() for _ in range(1)]
    first, second = Sampler("qlognormal", [0, 1, 0.1], seed=7), Sampler("qlognormal", [0, 1, 0.1], seed=7)
    assert [first() for _ in range(5)] == [second() for _ in range(5)]
    copy = pickle.loads(pickle.dumps(first))
    assert copy() == first()
    assert a[0] > 0


def test_quantize() -> None:
    assert quantize(7.4, 2) == 8.0 and quantize(6.9, 2, 7, 20) == 7.0 and quantize(23, 5, 0, 21) == 21.0


def test_nested_choice_samples_its_options_parameters() -> None:
    space = {
        "optimizer": {
            "_type": "choice",
            "_value": [
                {"_name": "sgd", "momentum": {"_type": "uniform", "_value": [0.5, 0.9]}},
                {"_name": "adam"},
            ],
        }
    }
    got = samples(space, "optimizer", n=100)
    names = {g["_name"] for g in got}
    assert names == {"sgd", "adam"}
    for g in got:
        if g["_name"] == "sgd":
            assert set(g) == {"_name", "momentum"} and 0.5 <= g["momentum"] <= 0.9
        else:
            assert g == {"_name": "adam"}


def test_grid_expands_choice_randint_and_quniform() -> None:
    space = {
        "a": {"_type": "choice", "_value": ["x", "y"]},
        "b": {"_type": "randint", "_value": [0, 3]},
        "c": {"_type": "quniform", "_value": [1, 10, 4]},
    }
    grid = to_tune(space, algorithm="grid")
    assert grid["a"] == tune.grid_search(["x", "y"])
    assert grid["b"] == tune.grid_search([0, 1, 2])
    assert grid["c"] == tune.grid_search([1.0, 4.0, 8.0, 10.0])
    assert grid_size(space) == 2 * 3 * 4
    assert len(list(generate_variants(grid))) == 24


@pytest.mark.parametrize("kind", ["uniform", "loguniform", "normal", "lognormal"])
def test_grid_refuses_types_without_a_grid(kind: str) -> None:
    with pytest.raises(SpecError, match=rf"searchConf\.space\.p\._type: {kind} has no grid"):
        to_tune(one(kind, [1, 2]), algorithm="grid")


def test_grid_refuses_a_nested_choice() -> None:
    space = {"o": {"_type": "choice", "_value": [{"_name": "sgd"}]}}
    with pytest.raises(
        SpecError, match=r"searchConf\.space\.o: the grid algorithm cannot expand a nested choice"
    ):
        to_tune(space, algorithm="grid")


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({}, r"searchConf\.space: must be a non-empty object"),
        ({"lr": 0.1}, r"searchConf\.space\.lr: must be \{\"_type\""),
        (
            {"lr": {"_type": "uniform", "_value": [1]}},
            r"searchConf\.space\.lr\._value: uniform takes \[low, high\]",
        ),
        (
            {"lr": {"_type": "gaussian", "_value": [0, 1]}},
            r"searchConf\.space\.lr\._type: 'gaussian' is not one of",
        ),
        ({"lr": {"_type": "uniform", "_value": [2, 1]}}, r"lower bound must be below"),
        ({"lr": {"_type": "loguniform", "_value": [0, 1]}}, r"needs a lower bound above 0"),
        ({"lr": {"_type": "quniform", "_value": [0, 1, 0]}}, r"q must be above 0"),
        ({"lr": {"_type": "normal", "_value": [0, -1]}}, r"sigma must be above 0"),
        (
            {"lr": {"_type": "choice", "_value": []}},
            r"searchConf\.space\.lr\._value: must be a non-empty list",
        ),
        ({"lr": {"_type": "randint", "_value": [0, "9"]}}, r"randint takes"),
        (
            {"o": {"_type": "choice", "_value": [{"_name": "a", "m": {"_type": "uniform", "_value": []}}]}},
            r"searchConf\.space\.o\._value\[0\]\.m\._value",
        ),
    ],
)
def test_wrong_shapes_are_refused_naming_the_parameter(space: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        to_tune(space)


def test_unknown_algorithm() -> None:
    with pytest.raises(SpecError, match="searchConf.algorithm"):
        to_tune(one("uniform", [0, 1]), algorithm="tpe")


def test_trial_book_tracks_reports_states_and_the_best() -> None:
    from control.schemas.trials import TrialState
    from runtime_agent.tune_trials import TrialBook, error_line, pick_best

    woken: list[int] = []
    book = TrialBook("loss", notify=lambda: woken.append(1))
    book.started("a", {"lr": np.float64(0.1), "n": np.int64(2)})
    book.started("b", {"lr": 0.01, "n": 1})
    book.started("c", {"lr": 0.5, "n": 1})
    for step, (a, b) in enumerate([(0.9, 1.2), (0.5, 1.1), (0.3, 1.0)], start=1):
        book.result("a", {"loss": a, "acc": 1 - a, "training_iteration": step, "pid": 7, "done": False})
        book.result("b", {"loss": b, "training_iteration": step, "config": {"lr": 0.01}})
    book.stopped_early.add("b")
    book.ended("a", TrialState.SUCCEEDED)
    book.ended("b", TrialState.SUCCEEDED)  # ASHA stopped it: it ends `stopped`
    book.ended("c", TrialState.FAILED, error_line(RuntimeError("Traceback ...\n  x\nValueError: nan loss")))
    assert len(woken) == 3 + 6 + 3
    a, b, c = (book.records[t] for t in "abc")
    assert a.params == {"lr": 0.1, "n": 2} and type(a.params["n"]) is int
    assert (
        a.metrics == {"loss": 0.3, "acc": 0.7}
        and a.history == [(1, 0.9), (2, 0.5), (3, 0.3)]
        and a.score == 0.3
    )
    assert (b.state, c.state, c.error, c.score) == (
        TrialState.STOPPED,
        TrialState.FAILED,
        "ValueError: nan loss",
        None,
    )
    assert pick_best([a, b, c], "min") is a
    assert pick_best([a, b, c], "max") is a  # finished trials beat stopped ones whatever their score
    assert pick_best([b, c], "min") is b and pick_best([c], "max") is None
    changed = book.take_changed()
    assert [t.trial_id for t in changed] == ["a", "b", "c"] and book.take_changed() == []
    book.result("a", {"loss": 0.2, "training_iteration": 4})
    assert [t.trial_id for t in book.take_changed()] == ["a"]
    assert len(book.all()) == 3


def test_trial_book_pickles_without_its_hooks() -> None:
    import pickle

    from runtime_agent.tune_trials import TrialBook

    book = TrialBook("loss", notify=lambda: None)
    book.result("a", {"loss": 1.0, "training_iteration": 1})
    copy = pickle.loads(pickle.dumps(book))
    copy.result("a", {"loss": 0.5, "training_iteration": 2})
    assert copy.records["a"].history == [(1, 1.0), (2, 0.5)]
