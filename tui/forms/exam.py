"""The exam form: name, experiment and description; creates (POST) or updates (PATCH) one exam."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tui.widgets.form import FieldSpec, FormScreen

if TYPE_CHECKING:
    from tui.screens.base import AtomScreen


async def edit(screen: AtomScreen, existing: dict[str, Any] | None) -> dict[str, Any] | None:
    """Create an exam (`existing` None, or defaults without an `id` such as `experimentId`) or edit one."""
    current = existing or {}
    ident = current.get("id")
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
        FieldSpec("examName", "Name", required=True, placeholder="daily"),
        FieldSpec(
            "experimentId",
            "Experiment",
            kind="select",
            required=True,
            options=[(e["experimentName"], e["id"]) for e in experiments],
        ),
        FieldSpec("description", "Description"),
    ]

    async def submit(values: dict[str, Any]) -> dict[str, Any]:
        body = {
            "examName": values["examName"],
            "experimentId": values["experimentId"],
            "description": values.get("description", ""),
        }
        if ident is None:
            return await screen.api.call(lambda c: c.create(space, "exams", body))
        return await screen.api.call(lambda c: c.patch(space, "exams", ident, body))

    title = f"Edit exam {current['examName']}" if ident else f"New exam in {space}"
    result = await screen.app.push_screen_wait(FormScreen(title, fields, submit, values=current))
    if result is None:
        return None
    saved: dict[str, Any] = result.answer
    screen.notify(f"exam {saved['examName']} saved")
    return saved
