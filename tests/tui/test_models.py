"""Models screen against a live control: the demo model's versions with scores and operatorResult,
Enter / `l` on a version opens the run that made it, and snapshots."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import DataTable

from tests.e2e.conftest import LiveControl
from tests.tui.conftest import SMALL, WIDE, TuiFactory, settle, until
from tests.tui.seed import Demo
from tests.tui.test_resources import open_screen, pin
from tui.screens.models import ModelsScreen
from tui.widgets.describe import DescribePane


def version_rows(screen: ModelsScreen) -> list[list[str]]:
    table = screen.query_one("#versions", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def open_models(pilot: Any) -> ModelsScreen:
    screen = await open_screen(pilot, "models")
    assert isinstance(screen, ModelsScreen)
    await until(pilot, lambda: screen.query_one("#versions", DataTable).row_count == 2, what="ctr's versions")
    return screen


async def test_versions_of_ctr_with_scores_and_result(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_models(pilot)
        assert [screen.row_key(r) for r in screen.shown] == ["ctr"]
        model_row = [str(c) for c in screen.table.get_row_at(0)]
        assert model_row[:4] == ["ctr", "2", "0.912 (v2)", "lake"]
        rows = version_rows(screen)
        assert [r[:4] for r in rows] == [
            ["v2", "0.912", "★ CONTAIN_OPTIMAL", f"#{demo.runs[2]}"],
            ["v1", "0.871", "NOT_CONTAIN_OPTIMAL", f"#{demo.runs[1]}"],
        ]
        assert rows[0][5] == "auc=0.912"
        optimal = screen.query_one("#versions", DataTable).get_row_at(0)[2]
        assert "bold" in str(optimal.style)  # highlighted


async def test_enter_and_l_on_a_version_open_its_run(
    make_tui: TuiFactory, demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_tui()
    opened: list[int] = []
    monkeypatch.setattr(app, "open_run", opened.append)
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_models(pilot)
        await pilot.press("l")  # from the models table: the selected version (the newest)
        assert opened == [demo.runs[2]]
        versions = screen.query_one("#versions", DataTable)
        versions.focus()
        await pilot.press("down")
        pane = screen.query_one("#describe", DescribePane)
        await until(pilot, lambda: "version v1" in pane.plain(), what="v1 described")
        await pilot.press("enter")
        assert opened == [demo.runs[2], demo.runs[1]]


@pytest.mark.parametrize("size", [SMALL, WIDE], ids=["80x24", "200x60"])
def test_models_snapshot(
    snap_compare: Any, snap_tui: TuiFactory, live: LiveControl, size: tuple[int, int]
) -> None:
    pin(live.settings)

    async def run_before(pilot: Any) -> None:
        await open_models(pilot)
        await settle(pilot)

    assert snap_compare(snap_tui(), terminal_size=size, run_before=run_before)
