"""The experiment form: name and description; creates (POST) or updates (PATCH) one experiment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tui.widgets.form import FieldSpec, FormScreen

if TYPE_CHECKING:
    from tui.screens.base import AtomScreen

FIELDS = [
    FieldSpec("experimentName", "Name", required=True, placeholder="ctr"),
    FieldSpec("description", "Description", placeholder="what this experiment is about"),
]


async def edit(screen: AtomScreen, existing: dict[str, Any] | None) -> dict[str, Any] | None:
    """Create an experiment (`existing` None, or defaults without an `id`) or edit one."""
    current = existing or {}
    ident = current.get("id")
    space = screen.space

    async def submit(values: dict[str, Any]) -> dict[str, Any]:
        body = {"experimentName": values["experimentName"], "description": values.get("description", "")}
        if ident is None:
            return await screen.api.call(lambda c: c.create(space, "experiments", body))
        return await screen.api.call(lambda c: c.patch(space, "experiments", ident, body))

    title = f"Edit experiment {current['experimentName']}" if ident else f"New experiment in {space}"
    result = await screen.app.push_screen_wait(FormScreen(title, FIELDS, submit, values=current))
    if result is None:
        return None
    saved: dict[str, Any] = result.answer
    screen.notify(f"experiment {saved['experimentName']} saved")
    return saved
