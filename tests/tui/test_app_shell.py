"""The app shell: modes, help, palette, theme, and the trouble banner against a real control."""

from __future__ import annotations

from tests.tui.conftest import TuiFactory, until
from tui.screens.help import HelpScreen


async def test_help_lists_keys(make_tui: TuiFactory) -> None:
    app = make_tui()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        table = app.screen.query_one("DataTable")
        keys = {str(table.get_row_at(i)[0]) for i in range(table.row_count)}
        assert {":", "?", "r"} <= keys
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
