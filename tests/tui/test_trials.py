"""Run detail's Trials tab against a live control: a search's trials, best first, its row highlighted."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from control.settings import Settings
from control.store.engine import Store
from control.store.pipeline_models import RunTrial
from tests.tui.conftest import WIDE, TuiFactory, screen_text, until
from tests.tui.seed import Demo
from tui.app import AtomApp
from tui.screens.run_detail import RunDetailScreen
from tui.widgets.trials import BEST_STYLE, TrialsTable


def add_trials(settings: Settings, run_id: int) -> None:
    store = Store(settings.database_url)
    try:
        with store.transaction() as ses:
            for trial_id, lr, state, score, best in (
                ("tr_00000", 0.1, "succeeded", 0.61, False),
                ("tr_00001", 0.01, "succeeded", 0.93, True),
                ("tr_00002", 0.001, "stopped", 0.2, False),
                ("tr_00003", 0.5, "failed", None, False),
            ):
                history = [[1, score / 2], [2, score]] if score is not None else []
                ses.add(
                    RunTrial(
                        runtime_id=run_id,
                        trial_id=trial_id,
                        params={"lr": lr},
                        state=state,
                        metrics={"score": score} if score is not None else {},
                        history=history,
                        score=score,
                        best=best,
                    )
                )
    finally:
        store.dispose()


def table(app: AtomApp) -> TrialsTable:
    return app.screen.query_one(TrialsTable)


async def test_trials_tab_lists_the_search_with_the_best_highlighted(
    make_tui: TuiFactory, demo: Demo, live: Any
) -> None:
    add_trials(live.settings, demo.log_run)
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        app.open_run(demo.log_run)
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.run is not None)
        await pilot.press("t")
        await until(pilot, lambda: table(app).row_count == 4, what="the trial rows")
        assert app.focused is table(app)
        rows = [table(app).get_row_at(i) for i in range(4)]
        # control's order: the best, then by score (the search's mode: max by default)
        assert [str(r[1]) for r in rows] == ["tr_00001", "tr_00000", "tr_00002", "tr_00003"]
        best = rows[0]
        assert str(best[0]) == "★" and table(app).best_row() == 0
        assert all(isinstance(cell, Text) and cell.style == BEST_STYLE for cell in best)
        assert all(not isinstance(cell, Text) or cell.style != BEST_STYLE for row in rows[1:] for cell in row)
        assert [str(r[3]) for r in rows] == ["succeeded", "succeeded", "stopped", "failed"]
        assert str(rows[0][4]) == "0.93" and str(rows[3][4]) == "-"
        text = screen_text(app)
        assert "Trials" in text and "lr=0.01" in text and "★" in text


async def test_a_run_without_a_search_shows_an_empty_trials_table(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        app.push_screen(RunDetailScreen(demo.log_run, tab="trials"))
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.run is not None)
        await until(pilot, lambda: table(app).page is not None, what="the trials to load")
        assert table(app).row_count == 0 and table(app).best_row() is None
