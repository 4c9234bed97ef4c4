"""Schedules screen against a live control: reached from the palette, lists the space's exam schedules
with their next fire time (local time and how soon), turns one off and on with `e`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from control.client import AsyncControlClient
from tests.e2e.conftest import LiveControl
from tests.tui.conftest import WIDE, settle, until
from tui.app import make_app
from tui.config import TuiConfig
from tui.screens.schedules import SchedulesScreen, how_soon

NOW = datetime(2098, 12, 31, 3, 0, tzinfo=UTC)


async def scheduled_exam(live: LiveControl) -> int:
    async with AsyncControlClient(live.url) as c:
        await c.ensure_space("default")
        await c.put("default", "experiments", "scene", {"experimentName": "scene"})
        scene = await c.get("default", "experiments", "scene")
        exam = await c.put(
            "default", "exams", "nightly", {"examName": "nightly", "experimentId": scene["id"]}
        )
        await c.set_schedule(
            exam["id"],
            {"cron": "0 3 * * *", "timezone": "Europe/Berlin", "start": "2099-01-01", "concurrency": "queue"},
        )
        return int(exam["id"])


def first_hit(app: Any) -> str:
    """The palette's first hit, as text ("" while it has none)."""
    from textual.command import CommandList

    found = app.screen.query(CommandList)
    if not found or found.first().option_count == 0:
        return ""
    return str(found.first().get_option_at_index(0).prompt)


def cells(screen: SchedulesScreen) -> list[list[str]]:
    return [[str(c) for c in screen.table.get_row_at(i)] for i in range(screen.table.row_count)]


async def test_schedules_screen_lists_and_toggles(live: LiveControl) -> None:
    exam = await scheduled_exam(live)
    app = make_app(
        TuiConfig(url=live.url, refresh=0.3, clock=lambda: NOW),
        AsyncControlClient(live.url, timeout=10),
        owns_client=True,
    )
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("colon")
        await until(pilot, lambda: type(app.screen).__name__ == "CommandPalette", what="the palette")
        await pilot.press(*":schedules")
        await until(pilot, lambda: ":schedules" in first_hit(app), what="the palette to find :schedules")
        await settle(pilot)
        await pilot.press("enter")
        await until(
            pilot, lambda: isinstance(app.screen, SchedulesScreen) and app.screen.loaded, what="schedules"
        )
        screen = app.screen
        assert isinstance(screen, SchedulesScreen)
        [row] = cells(screen)
        # 03:00 in Berlin on 2099-01-01 is 02:00 UTC (the tests run in UTC), 23 h after the pinned now
        assert row[:5] == ["nightly", "0 3 * * *", "Europe/Berlin", "2099-01-01 02:00 (in 23 h)", "queue"]
        assert screen.rows[0]["examId"] == exam and screen.rows[0]["nextFireAt"] == "2099-01-01T02:00:00"

        await pilot.press("e")
        await until(pilot, lambda: cells(screen) and cells(screen)[0][3] == "disabled", what="disabled")
        async with AsyncControlClient(live.url) as c:
            assert (await c.schedule(exam)).enabled is False
        await pilot.press("e")
        await until(
            pilot, lambda: cells(screen) and cells(screen)[0][3].startswith("2099-01-01 02:00"), what="on"
        )
        async with AsyncControlClient(live.url) as c:
            back = await c.schedule(exam)
        assert (
            back.enabled and back.concurrency.value == "queue" and back.start_at == datetime(2098, 12, 31, 23)
        )


def test_how_soon() -> None:
    assert how_soon("2099-01-01T02:00:00", NOW) == "in 23 h"
    assert how_soon("2098-12-31T02:50:00", NOW) == "10 min ago"
    assert how_soon(None, NOW) == ""
