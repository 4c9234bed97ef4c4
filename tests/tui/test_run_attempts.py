"""Run detail's History tab lists a run's attempts (state, failure class, reason) above its
transitions, once the run has more than one; against a live control."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from control.store import models as m
from control.store.pipeline_models import RunAttempt
from tests.e2e.conftest import LiveControl
from tests.tui.conftest import WIDE, TuiFactory, until
from tests.tui.seed import Demo
from tui.screens.run_detail import RunDetailScreen
from tui.widgets.attempts import AttemptsTable


def second_attempt(live: LiveControl, run_id: int) -> None:
    """The run as its second attempt, the first lost with its reason (as `control.retries` leaves it)."""
    with live.app.state.orchestrator.store.transaction() as ses:
        run = ses.get(m.Runtime, run_id)
        assert run is not None
        start = m.utcnow() - timedelta(minutes=5)
        ses.add(
            RunAttempt(
                runtime_id=run_id,
                attempt=1,
                state="failed",
                reason="no heartbeat from the agent for 61 s (limit 60 s)",
                failure_class="lost",
                retryable=True,
                started_at=start,
                finished_at=start + timedelta(minutes=2),
            )
        )
        ses.add(
            RunAttempt(runtime_id=run_id, attempt=2, state="running", started_at=start + timedelta(minutes=3))
        )
        run.attempt, run.max_attempts = 2, 3


async def test_the_history_tab_lists_the_attempts(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    second_attempt(live, demo.log_run)
    app = make_tui(refresh=0.2)
    async with app.run_test(size=WIDE) as pilot:
        app.push_screen(RunDetailScreen(demo.log_run, tab="history"))
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.run is not None)
        table: Any = app.screen.query_one(AttemptsTable)
        await until(pilot, lambda: table.row_count == 2, what="the two attempts")
        assert table.display
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert rows[0][0] == "1" and "failed" in rows[0][1] and rows[0][2] == "lost (retryable)"
        assert rows[0][5] == "no heartbeat from the agent for 61 s (limit 60 s)"
        assert rows[1][0] == "2" and "running" in rows[1][1] and rows[1][2] == "-" and rows[1][4] == "-"


async def test_a_first_attempt_shows_no_attempts_table(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui(refresh=0.2)
    async with app.run_test(size=WIDE) as pilot:
        app.push_screen(RunDetailScreen(demo.log_run, tab="history"))
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.run is not None)
        history: Any = app.screen.query_one("#history-table")
        await until(pilot, lambda: history.row_count > 0, what="the history rows")
        assert not app.screen.query_one(AttemptsTable).display
