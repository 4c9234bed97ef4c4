"""The experiment form: name and description, saved by name like every resource form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from control.schemas import ExperimentIn
from tui.forms._resource import ResourceForm, split_defaults
from tui.widgets.form import FieldSpec

if TYPE_CHECKING:
    from tui.screens.base import AtomScreen

FIELDS = [FieldSpec("description", "Description", placeholder="what this experiment is about")]


async def edit(screen: AtomScreen, existing: dict[str, Any] | None) -> dict[str, Any] | None:
    """Create an experiment (`existing` None, or defaults without an `id`) or edit one."""
    current, defaults = split_defaults(existing)
    form = ResourceForm(screen, "experiments", "experiment", ExperimentIn, current, FIELDS, defaults=defaults)
    return await form.open()
