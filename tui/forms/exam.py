"""The exam form: name, experiment and description, saved by name like every resource form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.schemas import ExamIn
from tui.forms._resource import ResourceForm, split_defaults
from tui.widgets.form import FieldSpec

if TYPE_CHECKING:
    from tui.screens.base import AtomScreen


async def edit(screen: AtomScreen, existing: dict[str, Any] | None) -> dict[str, Any] | None:
    """Create an exam (`existing` None, or defaults without an `id` such as `experimentId`) or edit one."""
    current, defaults = split_defaults(existing)
    space = screen.space
    experiments = await screen.attempt(lambda c: c.list(space, "experiments"), what="loading experiments")
    if experiments is None:
        return None
    if not experiments:
        screen.notify(
            "an exam belongs to an experiment: create one first (n on the space)", severity="warning"
        )
        return None
    fields = [
        FieldSpec(
            "experimentId",
            "Experiment",
            kind="select",
            required=True,
            options=[(e["experimentName"], e["id"]) for e in experiments],
        ),
        FieldSpec("description", "Description"),
    ]
    return await ResourceForm(screen, "exams", "exam", ExamIn, current, fields, defaults=defaults).open()
