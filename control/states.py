"""The run state machine (seed 002): legal transitions and the decision for a proposed one. Pure."""

from __future__ import annotations

from typing import Final

from control.errors import InvalidTransition
from control.schemas import RunState

Q, P, R = RunState.QUEUED, RunState.PENDING, RunState.RUNNING
OK, FAIL, STOP = RunState.SUCCEEDED, RunState.FAILED, RunState.STOPPED

ALLOWED: Final[dict[RunState, frozenset[RunState]]] = {
    Q: frozenset({P, R, STOP}),  # start (dispatched) / running / stop
    P: frozenset({R, OK, FAIL, STOP}),  # running / finished / stop
    R: frozenset({OK, FAIL, STOP}),  # finished / stop
    OK: frozenset(),
    FAIL: frozenset(),
    STOP: frozenset(),
}


def check(current: RunState, proposed: RunState) -> None:
    """Raise `InvalidTransition` unless `current -> proposed` is in the table."""
    if proposed not in ALLOWED[current]:
        if current.is_terminal():
            raise InvalidTransition(
                f"the run already ended as {current.value}; it cannot become {proposed.value}"
            )
        raise InvalidTransition(f"a {current.value} run cannot become {proposed.value}")


def is_legal(current: RunState, proposed: RunState) -> bool:
    return proposed in ALLOWED[current]
