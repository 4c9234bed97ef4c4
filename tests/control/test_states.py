"""The run state machine: seed 002's transitions, plus a retry's way back to queued and skips."""

from __future__ import annotations

import itertools

import pytest

from control.errors import InvalidTransition
from control.schemas import RunState
from control.states import ALLOWED, check, is_legal

LEGAL = {
    ("queued", "pending"),
    ("queued", "running"),
    ("queued", "stopped"),
    ("pending", "running"),
    ("pending", "succeeded"),
    ("pending", "failed"),
    ("pending", "stopped"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "stopped"),
    # a retryable failure queues the run's next attempt (backoff), from pending or running
    ("pending", "queued"),
    ("running", "queued"),
    # a node whose trigger rule is not met, or whose cached outputs are reused, is skipped
    ("queued", "skipped"),
    ("pending", "skipped"),
}


@pytest.mark.parametrize(("a", "b"), list(itertools.product(RunState, RunState)))
def test_transition_table(a: RunState, b: RunState) -> None:
    assert is_legal(a, b) == ((a.value, b.value) in LEGAL)


def test_terminal_states_are_final() -> None:
    for state in RunState:
        assert (not ALLOWED[state]) == state.is_terminal()
    with pytest.raises(InvalidTransition, match="already ended as succeeded"):
        check(RunState.SUCCEEDED, RunState.RUNNING)
