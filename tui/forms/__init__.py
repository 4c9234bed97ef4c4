"""Create/edit forms per resource kind: `await edit(screen, kind, existing)` opens the right one.

Each kind's form lives in its own module exposing `async def edit(screen, existing) -> dict | None`
(the saved resource as control returned it, or None when cancelled); this map finds it lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tui.screens.base import AtomScreen

#: kind (as `control.client.KINDS` names it) -> module under tui.forms
FORMS: dict[str, str] = {
    "connections": "tui.forms.connection",
    "sources": "tui.forms.source",
    "operators": "tui.forms.operator",
    "models": "tui.forms.model",
    "service-infos": "tui.forms.service_info",
    "experiments": "tui.forms.experiment",
    "exams": "tui.forms.exam",
    "nodes": "tui.forms.node",
}


async def edit(
    screen: AtomScreen, kind: str, existing: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Open the form for `kind` (a new one when `existing` is None); the saved resource, or None."""
    module = importlib.import_module(FORMS[kind])
    result: dict[str, Any] | None = await module.edit(screen, existing)
    return result
