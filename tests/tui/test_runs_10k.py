"""10,000 runs in the store: the Runs screen loads one page, filters on the server and pages on as the
cursor nears the end; it never asks for all runs. (Speed is measured in benchmarks/tui_runs.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from control.client import AsyncControlClient
from tests.e2e.conftest import LiveControl
from tests.tui.conftest import WIDE, TuiFactory, until
from tests.tui.seed import insert_runs
from tests.tui.test_runs import shown_ids, status, table
from tui.screens.runs import RunsScreen
from tui.widgets.runs_table import RunsTable

RUNS = 10_000
PAGE = 100


@pytest.fixture
def ten_thousand(live: LiveControl) -> list[int]:
    async def space() -> None:
        async with AsyncControlClient(live.url) as client:
            await client.ensure_space("default")

    asyncio.run(space())
    return insert_runs(live.settings, RUNS)


def record_list_runs(app: Any) -> list[dict[str, Any]]:
    """Every list_runs call the app makes (its keyword arguments)."""
    calls: list[dict[str, Any]] = []
    client = app.api.client
    original = client.list_runs

    async def recorded(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return await original(**kwargs)

    client.list_runs = recorded
    return calls


async def api_page(live: LiveControl, **params: Any) -> tuple[list[int], int]:
    async with AsyncControlClient(live.url) as client:
        page = await client.list_runs(space="default", **params)
        return [r.id for r in page.items], page.total


async def test_first_paint_filter_and_paging_with_10k_runs(
    make_tui: TuiFactory, live: LiveControl, ten_thousand: list[int]
) -> None:
    app = make_tui(page_size=PAGE, live=False)
    calls = record_list_runs(app)
    async with app.run_test(size=WIDE) as pilot:
        app.goto("runs")
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, RunsScreen) and app.screen.query(RunsTable) and table(app).row_count
            ),
            what="the first page",
        )
        # first paint: exactly one page, and the total of all runs
        assert table(app).row_count == PAGE
        assert status(app).startswith(f"{PAGE} of 10,000 runs")
        assert shown_ids(app) == sorted(ten_thousand, reverse=True)[:PAGE]
        assert all(c["limit"] <= PAGE for c in calls), calls

        # a filter: control answers with the matching subset and its total
        await pilot.press("slash", *"state:running")
        expected, total = await api_page(live, q="state:running", limit=PAGE)
        assert 0 < total < RUNS
        await until(pilot, lambda: shown_ids(app) == expected, what="the running runs")
        await until(
            pilot, lambda: status(app).startswith(f"{PAGE} of {total:,} runs"), what="the filtered total"
        )
        assert calls[-1]["q"] == "state:running" and calls[-1]["offset"] == 0

        # the cursor at the end of what is loaded loads the next page (and only that)
        await pilot.press("enter")
        assert app.focused is table(app)
        await pilot.press("end")
        await until(pilot, lambda: table(app).row_count == 2 * PAGE, what="the second page")
        expected, _ = await api_page(live, q="state:running", limit=2 * PAGE)
        assert shown_ids(app) == expected
        assert status(app).startswith(f"{2 * PAGE} of {total:,} runs")
        assert table(app).cursor_row == PAGE - 1, "the cursor stays where it was"
        assert max(c["limit"] for c in calls) <= PAGE
        assert sum(c["limit"] for c in calls) < RUNS, "the app never asked for every run"


async def test_a_keystroke_while_typing_wins(
    make_tui: TuiFactory, live: LiveControl, ten_thousand: list[int]
) -> None:
    app = make_tui(page_size=PAGE, live=False)
    async with app.run_test(size=WIDE) as pilot:
        app.goto("runs")
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, RunsScreen) and app.screen.query(RunsTable) and table(app).row_count
            ),
        )
        # typed quickly: only the last query's answer is shown
        await pilot.press("slash", *"node:ctr-tr")
        expected, total = await api_page(live, q="node:ctr-tr", limit=PAGE)
        await until(pilot, lambda: shown_ids(app) == expected, what="the last query's runs")
        await until(pilot, lambda: f"of {total:,} runs" in status(app))
        await pilot.press("backspace", "backspace", "backspace", "backspace")
        expected, total = await api_page(live, q="node:ct", limit=PAGE)
        await until(pilot, lambda: shown_ids(app) == expected and f"of {total:,} runs" in status(app))
