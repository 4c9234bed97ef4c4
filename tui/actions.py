"""Actions more than one screen offers: start a node or an exam, stop a run (after a confirm).

Each takes the screen it is called from (for notices and its worker context) and returns what
control answered, or None when it did not happen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from control.schemas import TaskEvent
from tui.widgets.confirm import ConfirmScreen

if TYPE_CHECKING:
    from control.schemas import RunOut, StartResult
    from tui.screens.base import AtomScreen


async def start_node(screen: AtomScreen, node_id: int, name: str) -> StartResult | None:
    """startNodeTask for one node; says which run it became."""
    result = await screen.attempt(
        lambda c: c.start_node_task(TaskEvent(task_id=node_id, task_type="NODE")), what=f"starting {name}"
    )
    if result is not None:
        runs = ", ".join(f"#{r}" for r in result.run_ids)
        screen.notify(f"{name}: started run {runs}", title="started")
    return result


async def start_exam(screen: AtomScreen, exam_id: int, name: str) -> StartResult | None:
    """startNodeTask with taskType EXAM: every node of the exam in DAG order."""
    result = await screen.attempt(
        lambda c: c.start_node_task(TaskEvent(task_id=exam_id, task_type="EXAM")),
        what=f"starting exam {name}",
    )
    if result is not None:
        screen.notify(f"exam {name}: {len(result.run_ids)} runs queued", title="started")
    return result


async def stop_run(screen: AtomScreen, run_id: int, *, label: str = "") -> RunOut | None:
    """Ask, then stop the run; None when the user said no or control refused."""
    what = f"run #{run_id}" + (f" ({label})" if label else "")
    if not await screen.app.push_screen_wait(ConfirmScreen(f"Stop {what}?", yes="Stop")):
        return None
    run = await screen.attempt(
        lambda c: c.stop_run(run_id, "stopped from the dashboard"), what=f"stopping {what}"
    )
    if run is not None:
        screen.notify(f"{what}: {run.state}", title="stop requested")
    return run
