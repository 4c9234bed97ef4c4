"""Pipeline vocabulary on the wire: trigger rules, failure classes, node inputs, search spaces.

Everything here is checked where it enters (the API, `atom apply`), so a bad cron, an input
that names no node, a search space of the wrong shape or an unknown trigger rule is refused
with the field's path named and nothing stored.
"""

from __future__ import annotations

import enum
import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from control.schemas._base import Str64, Str128, Wire


class TriggerRule(enum.StrEnum):
    """When a node runs, given how its upstream nodes ended."""

    ALL_SUCCESS = "all_success"
    """Every upstream run succeeded (or was served from cache); any other end skips the node."""
    ALL_DONE = "all_done"
    """Every upstream run ended, however."""
    ONE_FAILED = "one_failed"
    """At least one upstream run failed (a clean-up or alert node); skipped when none did."""


class FailureClass(enum.StrEnum):
    """Why an attempt failed; decides whether it is tried again."""

    USER = "user"
    """The operator's own code raised: terminal unless the operator opts in (`retryOnUserError`)."""
    SPEC = "spec"
    """A bad spec (unknown module, bad configuration): terminal."""
    LOST = "lost"
    """The agent went away (process died, heartbeats stopped): retryable."""
    CONNECTION = "connection"
    """A store or control could not be reached: retryable."""
    TIMEOUT = "timeout"
    """A call or the run itself timed out: retryable."""
    PREEMPTED = "preempted"
    """The node or pod was taken away (eviction, preemption): retryable."""
    INFRA = "infra"
    """The target could not start the run (image pull, adapter error): retryable."""

    @property
    def retryable(self) -> bool:
        return self not in (FailureClass.USER, FailureClass.SPEC)


class ConcurrencyPolicy(enum.StrEnum):
    """What a schedule does when its previous exam run is still going at the next fire time."""

    SKIP = "skip"
    QUEUE = "queue"
    REPLACE = "replace"


class ExamRunState(enum.StrEnum):
    QUEUED = "queued"
    """Fired by a schedule with policy queue; starts when the previous exam run ends."""
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"


class ArtifactKind(enum.StrEnum):
    MODEL = "model"
    DATASET = "dataset"
    FILE = "file"
    METRICS = "metrics"


# -- node inputs: {name: "upstreamNode.output"} ----------------------------------------------

INPUT_REF = re.compile(r"^(?P<node>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.(?P<output>[A-Za-z0-9_:./-]{1,128})$")
INPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def split_ref(ref: str) -> tuple[str, str]:
    """`"train.model"` -> `("train", "model")`; ValueError when it is not `node.output`."""
    found = INPUT_REF.match(ref)
    if found is None:
        raise ValueError(
            f"{ref!r} is not an artifact reference: write upstreamNode.output (e.g. train.model)"
        )
    return found["node"], found["output"]


def _check_inputs(value: dict[str, str]) -> dict[str, str]:
    for name, ref in value.items():
        if not INPUT_NAME.match(name):
            raise ValueError(f"input name {name!r} must be an identifier (letters, digits, _)")
        if not isinstance(ref, str):
            raise ValueError(f"input {name!r} must be a string upstreamNode.output")
        try:
            split_ref(ref)
        except ValueError as exc:
            raise ValueError(f"input {name!r}: {exc}") from None
    return value


NodeInputs = Annotated[dict[str, str], Field(max_length=100), AfterValidator(_check_inputs)]


# -- search spaces: seed 001's (NNI's) JSON format --------------------------------------------

SEARCH_TYPES: dict[str, str] = {
    "choice": "a list of options",
    "randint": "[lower, upper)",
    "uniform": "[low, high]",
    "quniform": "[low, high, q]",
    "loguniform": "[low, high] with 0 < low",
    "qloguniform": "[low, high, q] with 0 < low",
    "normal": "[mu, sigma]",
    "qnormal": "[mu, sigma, q]",
    "lognormal": "[mu, sigma]",
    "qlognormal": "[mu, sigma, q]",
}
_ARITY = {"randint": 2, "uniform": 2, "quniform": 3, "loguniform": 2, "qloguniform": 3, "normal": 2,
          "qnormal": 3, "lognormal": 2, "qlognormal": 3}  # fmt: skip


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def check_search_space(space: Any, path: str = "space") -> None:
    """Raise ValueError naming `path.param._value` when `space` is not a valid search space."""
    if not isinstance(space, dict) or not space:
        raise ValueError(f"{path or 'space'}: must be a non-empty object of parameter -> {{_type, _value}}")
    for name, param in space.items():
        where = f"{path}.{name}" if path else str(name)
        if not isinstance(param, dict) or set(param) != {"_type", "_value"}:
            raise ValueError(f'{where}: must be {{"_type": ..., "_value": [...]}}')
        kind, value = param["_type"], param["_value"]
        if kind not in SEARCH_TYPES:
            raise ValueError(f"{where}._type: {kind!r} is not one of {', '.join(SEARCH_TYPES)}")
        if not isinstance(value, list) or not value:
            raise ValueError(f"{where}._value: must be a non-empty list ({SEARCH_TYPES[kind]})")
        if kind == "choice":
            for i, option in enumerate(value):
                if isinstance(option, dict) and "_name" in option:  # nested choice
                    rest = {k: v for k, v in option.items() if k != "_name"}
                    if rest:
                        check_search_space(rest, f"{where}._value[{i}]")
            continue
        if len(value) != _ARITY[kind] or not all(_number(v) for v in value):
            raise ValueError(f"{where}._value: {kind} takes {SEARCH_TYPES[kind]}, got {value!r}")
        if kind in ("randint", "uniform", "quniform", "loguniform", "qloguniform") and value[0] >= value[1]:
            raise ValueError(f"{where}._value: the lower bound must be below the upper one")
        if kind in ("loguniform", "qloguniform") and value[0] <= 0:
            raise ValueError(f"{where}._value: {kind} needs a lower bound above 0")
        if kind.startswith("q") and value[-1] <= 0:
            raise ValueError(f"{where}._value: q must be above 0")
        if kind.endswith("normal") and value[1] <= 0:
            raise ValueError(f"{where}._value: sigma must be above 0")


def _check_space(value: dict[str, Any]) -> dict[str, Any]:
    check_search_space(value, "")
    return value


class SearchConf(Wire):
    """A hyper-parameter search an operator declares (`searchConf`), run with Ray Tune."""

    space: Annotated[dict[str, Any], AfterValidator(_check_space)]
    """Parameter -> `{"_type": "choice", "_value": [...]}` (seed 001's JSON format)."""
    metric: Str128 = Field(min_length=1)
    """The reported metric the search optimizes."""
    mode: str = Field(default="max", pattern="^(max|min)$")
    trials: int = Field(default=8, ge=1, le=10000)
    concurrency: int = Field(default=2, ge=1, le=1000)
    scheduler: str = Field(default="fifo", pattern="^(fifo|asha)$")
    """asha: early stopping of trials whose intermediate metric lags."""
    grace_period: int = Field(default=1, ge=1, le=1_000_000)
    """ASHA: reports a trial makes before it may be stopped."""
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    algorithm: Str64 = Field(default="random", pattern="^(random|grid)$")
