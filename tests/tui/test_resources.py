"""Connections, sources, operators and service-infos screens against a live control: the demo rows,
describe, filter, sort, delete with a confirm, "test connection", and no password on screen."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from textual.widgets import DataTable, Input, Static

from control.errors import ControlAPIError
from control.settings import Settings
from control.store import models as m
from control.store.engine import Store
from tests.e2e.conftest import LiveControl
from tests.tui.conftest import SMALL, WIDE, TuiFactory, screen_text, settle, until
from tests.tui.seed import NOW, Demo
from tui.app import AtomApp
from tui.screens.table import TableScreen
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.describe import DescribePane
from tui.widgets.form import FormScreen

PASSWORD = "s3cret-Pa55"
"""warehouse's password in the demo space: it must never reach the screen."""


# -- helpers the other dashboard tests of these screens share -------------------------------------


def notices(app: AtomApp) -> list[str]:
    """Every notice the app shows from now on (they still show)."""
    seen: list[str] = []
    original = app.notify

    def notify(message: str, *args: Any, **kwargs: Any) -> None:
        seen.append(str(message))
        original(message, *args, **kwargs)

    app.notify = notify  # type: ignore[method-assign]
    return seen


def pin(settings: Settings) -> None:
    """Fixed times on the demo's resources and a fixed address for `lake` (snapshots)."""
    store = Store(settings.database_url)
    try:
        with store.transaction() as ses:
            ses.execute(
                update(m.Connection)
                .where(m.Connection.connect_name == "lake")
                .values(connect_addr="/data/lake")
            )
            at = NOW - timedelta(days=1)
            for orm in (m.Connection, m.DataSource, m.Operator, m.Model, m.ServiceInfo):
                ses.execute(update(orm).values(create_time=at, update_time=at))
    finally:
        store.dispose()


async def open_screen(pilot: Any, mode: str) -> TableScreen:
    """Switch to `mode` and wait until its rows are in."""
    app = pilot.app
    app.goto(mode)
    await until(pilot, lambda: isinstance(app.screen, TableScreen) and app.screen.loaded, what=f"{mode} rows")
    screen: TableScreen = app.screen
    return screen


def keys(screen: TableScreen) -> list[str]:
    return [screen.row_key(row) for row in screen.shown]


def status(screen: TableScreen) -> str:
    return str(screen.query_one("#tbl-status", Static).render())


# -- tests ------------------------------------------------------------------------------------

DEMO_ROWS = [
    ("connections", ["lake", "warehouse"], ("connectType", "FILE")),
    ("sources", ["clicks", "holdout", "scores"], ("operateExecute", "train.csv")),
    (
        "operators",
        ["ctr-train", "ctr-prep", "ctr-score"],
        ("moduleName", "runtime_agent.examples.train_example"),
    ),
    ("service-infos", ["small"], ("siMemory", "1024")),
]


@pytest.mark.parametrize(("mode", "names", "field"), DEMO_ROWS, ids=[row[0] for row in DEMO_ROWS])
async def test_lists_demo_rows_and_describes_the_selected_one(
    make_tui: TuiFactory, demo: Demo, mode: str, names: list[str], field: tuple[str, str]
) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_screen(pilot, mode)
        assert keys(screen) == names
        assert screen.table.row_count == len(names)
        pane = screen.query_one("#describe", DescribePane)
        assert pane.display and screen.query_one("#tbl-side").display  # beside the table at 200 columns
        text = pane.plain()
        assert names[0] in text
        assert re.search(rf"{field[0]}\s+{re.escape(field[1])}", text), text
        assert "createTime" in text
        await pilot.press("down")
        await until(pilot, lambda: names[1 % len(names)] in pane.plain(), what="the describe pane to follow")


async def test_describe_toggles_at_80_columns(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_screen(pilot, "connections")
        side = screen.query_one("#tbl-side")
        assert not side.display
        await pilot.press("down", "d")
        await until(pilot, lambda: side.display, what="the describe pane")
        text = screen.query_one("#describe", DescribePane).plain()
        assert "warehouse" in text and "127.0.0.1" in text and "password" in text
        await pilot.press("d")
        await until(pilot, lambda: not side.display, what="the describe pane to hide")
        await pilot.press("enter")  # Enter on a row describes it too
        await until(pilot, lambda: side.display, what="the describe pane after enter")


async def test_filter_narrows_and_escape_clears(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_screen(pilot, "sources")
        await pilot.press("slash")
        bar = screen.query_one("#filter", Input)
        assert bar.display and bar.has_focus
        await pilot.press(*"sink")
        await until(pilot, lambda: keys(screen) == ["scores"], what="the filter to apply")
        assert "1 of 3" in str(screen.query_one("#tbl-title", Static).render())
        await pilot.press("enter")  # keeps the filter, back to the table
        assert screen.table.has_focus and keys(screen) == ["scores"]
        await pilot.press("escape")
        await until(
            pilot, lambda: keys(screen) == ["clicks", "holdout", "scores"], what="the filter to clear"
        )
        assert not bar.display


async def test_header_click_sorts(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_screen(pilot, "sources")
        table = screen.table
        role = list(table.columns)[2]
        table.post_message(DataTable.HeaderSelected(table, role, 2, table.columns[role].label))
        await until(pilot, lambda: keys(screen) == ["scores", "clicks", "holdout"], what="sorted by role")
        table.post_message(DataTable.HeaderSelected(table, role, 2, table.columns[role].label))
        await until(pilot, lambda: keys(screen) == ["holdout", "clicks", "scores"], what="reverse sort")


async def test_delete_asks_first(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_screen(pilot, "connections")
        await pilot.press("down", "D")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm")
        assert "warehouse" in str(app.screen.query_one("#confirm-question", Static).render())
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen, what="the confirm to close")
        await settle(pilot)
        assert keys(screen) == ["lake", "warehouse"]
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm")
        await pilot.press("y")
        await until(pilot, lambda: keys(screen) == ["lake"], what="warehouse to go")
        with pytest.raises(ControlAPIError) as gone:
            await app.api.client.get("default", "connections", "warehouse")
        assert gone.value.status_code == 404


async def test_delete_refused_says_why(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        seen = notices(app)
        screen = await open_screen(pilot, "connections")
        await pilot.press("D")  # lake: the sources still use it
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm")
        await pilot.press("y")
        await until(pilot, lambda: any("still used" in n for n in seen), what="the refusal notice")
        assert keys(screen) == ["lake", "warehouse"]


async def test_password_never_on_screen(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_screen(pilot, "connections")
        await pilot.press("down")
        pane = screen.query_one("#describe", DescribePane)
        await until(pilot, lambda: "warehouse" in pane.plain(), what="warehouse described")
        await settle(pilot)
        text = screen_text(app)
        assert "set (hidden)" in text
        assert PASSWORD not in text and PASSWORD not in pane.plain()
        for row in range(screen.table.row_count):
            assert not any(PASSWORD in str(cell) for cell in screen.table.get_row_at(row))
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the edit form")
        await settle(pilot)
        password = app.screen.query_one("#f-connectPassword", Input)
        assert password.value == "" and password.password
        assert PASSWORD not in screen_text(app)
        await pilot.press("escape")


async def test_test_connection_ok_on_lake(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_screen(pilot, "connections")
        await pilot.press("t")
        await until(pilot, lambda: status(screen).startswith("✔"), what="the test result")
        line = screen.query_one("#tbl-status", Static)
        assert status(screen).startswith("✔ ok: lake") and line.has_class("ok")


async def test_test_connection_on_warehouse_says_what_went_wrong(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_screen(pilot, "connections")
        await pilot.press("down", "t")
        await until(pilot, lambda: status(screen).startswith("✘"), what="the test result")
        text = status(screen)
        assert text.startswith("✘ warehouse:") and screen.query_one("#tbl-status").has_class("error")
        assert "127.0.0.1:3306" in text and re.search(r"denied|refused|unreachable", text, re.IGNORECASE), (
            text
        )
        assert PASSWORD not in text
        await pilot.press("up")  # another row: the line about warehouse goes away
        await until(pilot, lambda: not screen.query_one("#tbl-status").display, what="the line to clear")


@pytest.mark.parametrize("size", [SMALL, WIDE], ids=["80x24", "200x60"])
def test_connections_snapshot(
    snap_compare: Any, snap_tui: TuiFactory, live: LiveControl, size: tuple[int, int]
) -> None:
    pin(live.settings)

    async def run_before(pilot: Any) -> None:
        await open_screen(pilot, "connections")
        await settle(pilot)

    assert snap_compare(snap_tui(), terminal_size=size, run_before=run_before)


async def test_help_lists_the_screen_keys(make_tui: TuiFactory, demo: Demo) -> None:
    from tui.screens.help import HelpScreen

    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        await open_screen(pilot, "connections")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        table = app.screen.query_one(DataTable)
        listed = {str(table.get_row_at(i)[0]): str(table.get_row_at(i)[1]) for i in range(table.row_count)}
        for key in ("/", "d", "n", "e", "D", "t", "r"):
            assert key in listed, listed
        assert listed["t"] == "Test"
