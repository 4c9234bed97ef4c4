"""Seed 001's search-space JSON (NNI's format) as Ray Tune search-space objects.

`{"lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]}, ...}` becomes `{"lr": tune.loguniform(...)}`.
Types and their Tune counterparts (random search):

- choice -> `tune.choice` (a nested choice's options `{"_name": ..., <params>}` keep their own
  parameters, sampled when the option is picked); randint -> `tune.randint` (upper bound excluded);
  uniform, loguniform -> `tune.uniform`, `tune.loguniform`; normal -> `tune.randn`.
- quniform, qloguniform, qnormal -> `tune.quniform`, `tune.qloguniform`, `tune.qrandn` when the
  bounds are multiples of q (Tune's own condition); otherwise NNI's rule, `clip(round(x / q) * q,
  low, high)`, through `tune.sample_from`.
- lognormal, qlognormal -> `exp(normal(mu, sigma))` (rounded to q) through `tune.sample_from`.

The grid algorithm expands choice (`tune.grid_search`), randint (every integer) and quniform
(every multiple of q between the bounds); other types have no grid and are refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from control.schemas.pipeline import check_search_space
from runtime_agent.errors import SpecError

GRID_TYPES = ("choice", "randint", "quniform")
MAX_GRID_POINTS = 100_000


def _is_multiple(value: float, q: float) -> bool:
    ratio = value / q
    return math.isclose(ratio, round(ratio), rel_tol=0.0, abs_tol=1e-9)


def quantize(value: float, q: float, low: float | None = None, high: float | None = None) -> float:
    """NNI's q rounding: `round(value / q) * q`, clipped to `[low, high]` where bounds are given."""
    out = round(value / q) * q
    if low is not None:
        out = max(out, low)
    if high is not None:
        out = min(out, high)
    return float(out)


class Sampler:
    """A picklable `tune.sample_from` function for the types Tune has no domain for (NNI semantics).

    Args:
        kind: quniform, qloguniform, qnormal, lognormal or qlognormal.
        args: the type's `_value`.
        seed: seeds this parameter's own generator (None: fresh entropy).
    """

    def __init__(self, kind: str, args: list[float], seed: int | None = None) -> None:
        import numpy as np  # deferred: numpy comes with Ray anyway

        self.kind = kind
        self.args = [float(a) for a in args]
        self.rng = np.random.default_rng(seed)

    def __call__(self, spec: Any = None) -> float:
        a = self.args
        if self.kind == "quniform":
            return quantize(float(self.rng.uniform(a[0], a[1])), a[2], a[0], a[1])
        if self.kind == "qloguniform":
            raw = math.exp(float(self.rng.uniform(math.log(a[0]), math.log(a[1]))))
            return quantize(raw, a[2], a[0], a[1])
        if self.kind == "qnormal":
            return quantize(float(self.rng.normal(a[0], a[1])), a[2])
        value = math.exp(float(self.rng.normal(a[0], a[1])))
        if self.kind == "qlognormal":
            return quantize(value, a[2])
        return value

    def __deepcopy__(self, memo: dict[int, Any]) -> Sampler:
        # Tune deep-copies the search space before each sample: a copied generator would repeat
        # the same draw for every trial, so every copy is this one object
        return self

    def __repr__(self) -> str:
        return f"Sampler({self.kind}, {self.args})"


def _seed_for(seed: int | None, index: int) -> int | None:
    return None if seed is None else (seed * 1_000_003 + index) % (2**32)


def _random_domain(kind: str, value: list[Any], seed: int | None, where: str) -> Any:
    from ray import tune  # deferred: Ray costs seconds to import

    if kind == "choice":
        return tune.choice([_option(option, seed, where, i) for i, option in enumerate(value)])
    if kind == "randint":
        return tune.randint(int(value[0]), int(value[1]))
    if kind == "uniform":
        return tune.uniform(float(value[0]), float(value[1]))
    if kind == "loguniform":
        return tune.loguniform(float(value[0]), float(value[1]))
    if kind == "normal":
        return tune.randn(float(value[0]), float(value[1]))
    if kind in ("quniform", "qloguniform"):
        low, high, q = (float(v) for v in value)
        if _is_multiple(low, q) and _is_multiple(high, q):
            maker = tune.quniform if kind == "quniform" else tune.qloguniform
            return maker(low, high, q)
        return tune.sample_from(Sampler(kind, value, seed))
    if kind == "qnormal":
        return tune.qrandn(float(value[0]), float(value[1]), float(value[2]))
    return tune.sample_from(Sampler(kind, value, seed))  # lognormal, qlognormal


def _option(option: Any, seed: int | None, where: str, index: int) -> Any:
    """A choice option; a nested choice's `{"_name": ..., params}` keeps its params as Tune domains."""
    if isinstance(option, dict) and "_name" in option:
        rest = {k: v for k, v in option.items() if k != "_name"}
        nested = (
            to_tune(rest, seed=_seed_for(seed, index + 7919), path=f"{where}._value[{index}]") if rest else {}
        )
        return {"_name": option["_name"], **nested}
    return option


def _grid_values(kind: str, value: list[Any], where: str) -> list[Any]:
    if kind == "choice":
        if any(isinstance(option, dict) and "_name" in option for option in value):
            raise SpecError(
                f"{where}: the grid algorithm cannot expand a nested choice; use algorithm random"
            )
        return list(value)
    if kind == "randint":
        return list(range(int(value[0]), int(value[1])))
    if kind == "quniform":
        low, high, q = (float(v) for v in value)
        points = sorted({quantize(low + i * q, q, low, high) for i in range(int((high - low) / q) + 2)})
        return points
    raise SpecError(
        f"{where}._type: {kind} has no grid; the grid algorithm takes {', '.join(GRID_TYPES)} "
        "(use algorithm random)"
    )


def grid_size(space: Mapping[str, Any]) -> int:
    """How many points the grid of `space` has (the product of each parameter's values)."""
    total = 1
    for name, param in space.items():
        total *= len(_grid_values(param["_type"], param["_value"], f"searchConf.space.{name}"))
    return total


def to_tune(
    space: Mapping[str, Any],
    *,
    algorithm: str = "random",
    seed: int | None = None,
    path: str = "searchConf.space",
) -> dict[str, Any]:
    """The Tune `param_space` for a seed-001 search space.

    Args:
        space: parameter -> `{"_type": ..., "_value": [...]}`.
        algorithm: `random` (sampled domains) or `grid` (`tune.grid_search` of every point).
        seed: makes the samplers this module adds reproducible (Tune's own take the searcher's seed).
        path: where the space sits, for error messages.

    Raises:
        SpecError: the space is not valid (the message names the parameter), or a type has no grid.
    """
    try:
        check_search_space(dict(space), path)
    except ValueError as exc:
        raise SpecError(str(exc)) from exc
    if algorithm not in ("random", "grid"):
        raise SpecError(f"searchConf.algorithm: {algorithm!r} is not one of random, grid")
    out: dict[str, Any] = {}
    for index, (name, param) in enumerate(space.items()):
        where = f"{path}.{name}"
        kind, value = param["_type"], param["_value"]
        if algorithm == "grid":
            from ray import tune  # deferred: see _random_domain

            out[name] = tune.grid_search(_grid_values(kind, value, where))
        else:
            out[name] = _random_domain(kind, value, _seed_for(seed, index), where)
    if algorithm == "grid" and grid_size(space) > MAX_GRID_POINTS:
        raise SpecError(f"{path}: the grid has more than {MAX_GRID_POINTS} points")
    return out


def plain(value: Any) -> Any:
    """A sampled value as plain JSON (numpy scalars to Python numbers, nested dicts kept)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


__all__ = ["GRID_TYPES", "Sampler", "grid_size", "plain", "quantize", "to_tune"]
