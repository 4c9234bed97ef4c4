"""The run state machine (seed 002): legal transitions and the decision for a proposed one. Pure."""

from __future__ import annotations

from typing import Final

from control.errors import InvalidTransition
from control.schemas import RunState

Q, P, R = RunState.QUEUED, RunState.PENDING, RunState.RUNNING
OK, FAIL, STOP, SKIP = RunState.SUCCEEDED, RunState.FAILED, RunState.STOPPED, RunState.SKIPPED

ALLOWED: Final[dict[RunState, frozenset[RunState]]] = {
    Q: frozenset({P, R, STOP, SKIP}),  # start (dispatched) / running / stop / skip (trigger rule, cache)
    P: frozenset({Q, R, OK, FAIL, STOP, SKIP}),  # retry later / running / finished / stop / cache hit
    R: frozenset({Q, OK, FAIL, STOP}),  # retry later (a retryable failure) / finished / stop
    OK: frozenset(),
    FAIL: frozenset(),
    STOP: frozenset(),
    SKIP: frozenset(),
}
RESUMABLE: Final[frozenset[RunState]] = frozenset({FAIL, STOP, SKIP})
"""Ends a resume of its exam run (`atom resume`) may queue again, as the run's next attempt."""


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
