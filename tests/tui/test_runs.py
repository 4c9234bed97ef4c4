"""The Runs screen against a live control: the demo's runs in the right columns, `/` filter and sort
done by control, live updates that keep the cursor, follow, stop and start, describe; snapshots."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from control.client import AsyncControlClient
from tests.e2e.conftest import LiveControl
from tests.tui.conftest import SMALL, WIDE, TuiFactory, settle, until
from tests.tui.seed import NOW, Demo, insert_runs
from tui.app import AtomApp
from tui.screens.run_detail import RunDetailScreen
from tui.screens.runs import RunsScreen
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.runs_table import RunsTable


def table(app: AtomApp) -> RunsTable:
    return app.screen.query_one(RunsTable)


def shown_ids(app: AtomApp) -> list[int]:
    return [run.id for run in table(app).runs]


def cell(app: AtomApp, run_id: int, column: str) -> str:
    return str(table(app).get_cell(str(run_id), column))


def status(app: AtomApp) -> str:
    return str(app.screen.query_one("#runs-status").render())


async def open_runs(pilot: Any, app: AtomApp, rows: int) -> None:
    app.goto("runs")
    await until(
        pilot,
        lambda: (
            isinstance(app.screen, RunsScreen)
            and app.screen.query(RunsTable)
            and table(app).row_count == rows
        ),
        what=f"{rows} runs in the table",
    )


async def api_ids(live: LiveControl, **params: Any) -> list[int]:
    async with AsyncControlClient(live.url) as client:
        page = await client.list_runs(space="default", limit=1000, **params)
        return [run.id for run in page.items]


async def test_table_shows_the_demo_runs_in_columns(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    app = make_tui(clock=lambda: NOW)
    async with app.run_test(size=WIDE) as pilot:
        await open_runs(pilot, app, 12)
        assert shown_ids(app) == await api_ids(live) == sorted(demo.runs, reverse=True)
        assert list(table(app).widths) == [
            "id",
            "node",
            "type",
            "adapter",
            "state",
            "attempt",
            "started",
            "duration",
            "progress",
            "reason",
        ]
        async with AsyncControlClient(live.url) as client:
            run = await client.get_run(demo.log_run)
        assert cell(app, run.id, "node") == run.node_name
        assert cell(app, run.id, "type") == run.operator_runtime_type.value
        assert cell(app, run.id, "adapter") == "local"
        assert cell(app, run.id, "state") == "▶ running"
        assert cell(app, run.id, "progress").endswith("42%")
        assert status(app).startswith("12 of 12 runs")
        # a running run's duration counts up from its start to the app's clock
        assert cell(app, run.id, "duration") == "2h48m"
    app = make_tui(clock=lambda: NOW)
    async with app.run_test(size=SMALL) as pilot:
        await open_runs(pilot, app, 12)
        assert "adapter" not in table(app).widths and "attempt" not in table(app).widths
        assert sum(w + 2 for w in table(app).widths.values()) <= SMALL[0]


async def test_filter_narrows_to_what_control_matches(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        await open_runs(pilot, app, 12)
        await pilot.press("slash")
        assert app.focused is app.screen.query_one("RunFilter")
        await pilot.press(*"state:running")
        expected = await api_ids(live, q="state:running")
        assert expected and len(expected) < 12
        await until(pilot, lambda: shown_ids(app) == expected, what="the running runs only")
        assert all(cell(app, i, "state") == "▶ running" for i in expected)
        assert f"of {len(expected)} runs" in status(app) and "filter 'state:running'" in status(app)
        # a second term narrows further; free text matches node names
        await pilot.press("space", *"ad")
        expected = await api_ids(live, q="state:running ad")
        await until(pilot, lambda: shown_ids(app) == expected, what="running adhoc runs")
        await pilot.press("enter")
        assert app.focused is table(app)
        # Esc in the field clears the filter
        await pilot.press("slash", "escape")
        await until(pilot, lambda: table(app).row_count == 12, what="all runs again")
        assert app.focused is table(app)
        # the app's jump (e.g. from the palette: node <name>) sets the filter
        app.open_runs("node:train")
        expected = await api_ids(live, q="node:train")
        await until(pilot, lambda: shown_ids(app) == expected, what="the train runs")


async def test_open_runs_from_another_screen_filters(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        await until(pilot, lambda: not isinstance(app.screen, RunsScreen) and app.screen.is_mounted)
        app.open_runs("node:train")  # what the palette's `node train` does
        expected = await api_ids(live, q="node:train")
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, RunsScreen)
                and app.screen.query(RunsTable)
                and shown_ids(app) == expected
            ),
            what="the train runs",
        )
        assert app.screen.query_one("RunFilter").value == "node:train"  # type: ignore[attr-defined]


async def test_sort_by_header_click_and_keys(make_tui: TuiFactory, demo: Demo, live: LiveControl) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        await open_runs(pilot, app, 12)
        widths = table(app).widths
        x = widths["id"] + 2 + 3  # inside the NODE header
        await pilot.click(RunsTable, offset=(x, 0))
        expected = await api_ids(live, sort="node", desc=False)
        await until(pilot, lambda: shown_ids(app) == expected, what="runs sorted by node")
        assert "sort node ▲" in status(app)
        assert str(table(app).columns["node"].label).startswith("NODE ▲")  # type: ignore[index]
        await pilot.press("exclamation_mark")
        expected = await api_ids(live, sort="node", desc=True)
        await until(pilot, lambda: shown_ids(app) == expected, what="runs sorted by node, Z first")
        await pilot.press("greater_than_sign")  # the next column: operator type
        expected = await api_ids(live, sort="operator", desc=False)
        await until(pilot, lambda: shown_ids(app) == expected and "sort type" in status(app))
        # a click on the same header again reverses
        await pilot.click(RunsTable, offset=(x, 0))
        await pilot.click(RunsTable, offset=(x, 0))
        expected = await api_ids(live, sort="node", desc=True)
        await until(pilot, lambda: shown_ids(app) == expected and "sort node ▼" in status(app))


async def test_enter_d_and_l_open_the_run(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        await open_runs(pilot, app, 12)
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run's detail")
        assert isinstance(app.screen, RunDetailScreen)
        assert app.screen.run_id == sorted(demo.runs, reverse=True)[1]
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
        assert app.screen.query_one("TabbedContent").active == "log"  # type: ignore[attr-defined]


async def test_x_asks_then_stops_a_running_run(make_tui: TuiFactory, demo: Demo, live: LiveControl) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        await open_runs(pilot, app, 12)
        rebuilds = count_rebuilds(table(app))
        running = (await api_ids(live, q="state:running"))[-1]
        table(app).move_cursor(row=table(app).get_row_index(str(running)))
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm dialog")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        async with AsyncControlClient(live.url) as client:
            assert (await client.get_run(running)).state.value == "running"
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: cell(app, running, "state") == "■ stopped", what="the row to say stopped")
        async with AsyncControlClient(live.url) as client:
            run = await client.get_run(running)
        assert run.state.value == "stopped"
        assert any("dashboard" in t.reason for t in run.history)
        assert table(app).current_id == running, "the cursor stays on the run"
        assert rebuilds == [], "the same runs: cells change in place, the table is not rebuilt"


async def test_s_on_a_node_that_cannot_start_says_why(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        await open_runs(pilot, app, 12)
        adhoc = (await api_ids(live, q="node:adhoc"))[0]
        table(app).move_cursor(row=table(app).get_row_index(str(adhoc)))
        await pilot.press("s")
        await until(
            pilot,
            lambda: any("starting adhoc" in str(n.message) for n in app._notifications),
            what="a notice saying why the node cannot start",
        )
        assert isinstance(app.screen, RunsScreen)
        assert table(app).row_count == 12


async def test_live_rows_keep_the_cursor_and_follow(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        await open_runs(pilot, app, 12)
        await pilot.press("down", "down", "down")
        chosen = table(app).current_id
        assert chosen is not None
        new = insert_runs(live.settings, 3, start=NOW + timedelta(minutes=5))
        await until(pilot, lambda: table(app).row_count == 15, what="new runs to appear")
        assert table(app).current_id == chosen, "the cursor stays on the same run"
        await pilot.press("f")
        assert "follow" in status(app)
        await until(pilot, lambda: table(app).current_id == max(new), what="the cursor on the newest run")
        newer = insert_runs(live.settings, 2, start=NOW + timedelta(minutes=10))
        await until(pilot, lambda: table(app).current_id == max(newer), what="the cursor to follow")
        await pilot.press("down")
        await until(pilot, lambda: "follow" not in status(app), what="follow to end when the cursor moves")


async def test_new_runs_leave_the_selected_run_on_its_line(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    insert_runs(live.settings, 40, start=NOW - timedelta(days=1))
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        await open_runs(pilot, app, 52)
        await pilot.press(*["down"] * 30)
        await until(pilot, lambda: table(app).scroll_y > 0, what="the table to scroll")
        chosen, on_screen = table(app).current_id, table(app).cursor_row - table(app).scroll_y
        insert_runs(live.settings, 3, start=NOW + timedelta(minutes=5))
        await until(pilot, lambda: table(app).row_count == 55, what="new runs at the top")
        assert table(app).current_id == chosen
        await until(
            pilot,
            lambda: table(app).cursor_row - table(app).scroll_y == on_screen,
            what="the run to stay on the same line of the screen",
        )


async def test_help_lists_the_runs_keys(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        await open_runs(pilot, app, 12)
        await pilot.press("question_mark")
        await until(pilot, lambda: type(app.screen).__name__ == "HelpScreen", what="help")
        keys = app.screen.query_one("DataTable")
        rows = {str(keys.get_row_at(i)[0]): str(keys.get_row_at(i)[1]) for i in range(keys.row_count)}  # type: ignore[attr-defined]
        for key in ("/", "l", "s", "x", "f", "d", "<", ">", "!", "r"):
            assert key in rows, (key, rows)
        assert rows["f"] == "Follow" and rows["x"] == "Stop"


async def test_running_durations_count_up_with_the_clock(make_tui: TuiFactory, demo: Demo) -> None:
    now = [NOW]
    app = make_tui(clock=lambda: now[0], refresh=0.1)
    async with app.run_test(size=WIDE) as pilot:
        await open_runs(pilot, app, 12)
        assert cell(app, demo.log_run, "duration") == "2h48m"
        done = demo.runs[0]
        before = cell(app, done, "duration")
        rebuilds = count_rebuilds(table(app))
        now[0] = NOW + timedelta(minutes=10)
        await until(
            pilot, lambda: cell(app, demo.log_run, "duration") == "2h58m", what="the duration to grow"
        )
        assert cell(app, done, "duration") == before, "a finished run's duration stays"
        assert rebuilds == []


def count_rebuilds(runs_table: RunsTable) -> list[object]:
    """Record every full rebuild of the table from now on."""
    calls: list[object] = []
    original = runs_table.rebuild

    def rebuild(keep: int | None = None, *, top: bool = False) -> None:
        calls.append(keep)
        original(keep, top=top)

    runs_table.rebuild = rebuild  # type: ignore[method-assign]
    return calls


async def _runs_ready(pilot: Any) -> None:
    app = pilot.app
    app.goto("runs")
    await until(
        pilot,
        lambda: (
            isinstance(app.screen, RunsScreen) and app.screen.query(RunsTable) and table(app).row_count == 12
        ),
    )
    await settle(pilot)


def test_snapshot_small(snap_compare: Any, snap_tui: TuiFactory) -> None:
    assert snap_compare(snap_tui(), terminal_size=SMALL, run_before=_runs_ready)


def test_snapshot_wide(snap_compare: Any, snap_tui: TuiFactory) -> None:
    assert snap_compare(snap_tui(), terminal_size=WIDE, run_before=_runs_ready)
