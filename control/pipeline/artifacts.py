"""Artifacts: the outputs a run leaves, and the inputs of downstream runs resolved from them.

Every function takes a session inside the caller's transaction.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from control import schemas as s
from control.store import models as m


def resolve_inputs(*, session: Session, run: m.Runtime, spec: s.TaskSpec) -> None:
    """Fill `spec.inputs` from the node's `inputs` ({name: "upstreamNode.output"}) at dispatch.

    Each reference is looked up among the artifacts of the upstream node's run in the same exam
    run; a model input also points `spec.model` at that version.

    Raises:
        InvalidSpec: a reference names no upstream node of the exam, or an output it did not leave.
    """


def record_outputs(*, session: Session, run: m.Runtime) -> None:
    """Record the outputs of a run that just succeeded (its model version, final metrics, ...)."""


def copy_outputs(*, session: Session, source_run_id: int, run: m.Runtime) -> None:
    """Give `run` the artifacts of `source_run_id` (a cache hit), each marked `reused_from`."""
