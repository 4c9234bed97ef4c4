"""Services screen against a live control: both demo services, one-key approve of the waiting one
(and why not for the ready one), stop after a confirm, the infer URL and curl line, copy, snapshots."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Input, Static

from tests.tui.conftest import SMALL, WIDE, TuiFactory, settle, until
from tests.tui.seed import Demo
from tests.tui.test_resources import keys, notices, open_screen
from tui.screens.services import ServicesScreen
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.describe import DescribePane
from tui.widgets.form import FormScreen

ENDPOINT = "http://127.0.0.1:18501"


async def open_services(pilot: Any) -> ServicesScreen:
    screen = await open_screen(pilot, "services")
    assert isinstance(screen, ServicesScreen)
    return screen


def state_of(screen: ServicesScreen, name: str) -> str:
    return next(str(r["state"]) for r in screen.rows if r["serviceName"] == name)


async def test_lists_both_demo_services(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_services(pilot)
        assert len(keys(screen)) == 2
        cells = [[str(c) for c in screen.table.get_row_at(i)] for i in range(2)]
        assert cells[0][1:5] == ["reasoning-ctr-1", "ctr:v1", "✔ ready", "█████ 100%"]
        assert cells[1][1:4] == ["reasoning-ctr-2", "ctr:v2", "? waiting_approval"]
        assert cells[0][5] == ENDPOINT and cells[0][6:8] == ["1", "0"] and "TOUCH_DEPLOY" in cells[1][8]


async def test_approve_the_waiting_service_in_one_key(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        seen = notices(app)
        screen = await open_services(pilot)
        await pilot.press("down", "a")
        await until(pilot, lambda: any("approved" in n for n in seen), what="the approve notice")
        await until(
            pilot, lambda: state_of(screen, "reasoning-ctr-2") != "waiting_approval", what="the new state"
        )
        shown = str(screen.table.get_row_at(1)[3])
        assert "waiting_approval" not in shown and state_of(screen, "reasoning-ctr-2") in shown
        service = await app.api.client.get_service(int(screen.rows[1]["id"]))
        assert service.state.value != "waiting_approval"
        assert "atom services key" in " ".join(seen)  # approving made a key; the screen never shows it
        assert "atomsk_" not in " ".join(seen) + repr(screen.rows)


async def test_approve_on_a_ready_service_says_why_not(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        seen = notices(app)
        screen = await open_services(pilot)
        await pilot.press("a")
        await until(pilot, lambda: seen, what="the notice")
        assert "reasoning-ctr-1 is ready" in seen[0] and "waiting for approval" in seen[0]
        await settle(pilot)
        assert state_of(screen, "reasoning-ctr-1") == "ready"


async def test_stop_asks_then_stops(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_services(pilot)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm")
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen, what="the confirm to close")
        await settle(pilot)
        assert state_of(screen, "reasoning-ctr-1") == "ready"
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm")
        await pilot.press("y")
        await until(pilot, lambda: state_of(screen, "reasoning-ctr-1") == "stopped", what="stopped")
        assert "stopped" in str(screen.table.get_row_at(0)[3])
        service = await app.api.client.get_service(int(screen.rows[0]["id"]))
        assert service.state.value == "stopped"


async def test_promote_rollback_and_weight_keys_ask_then_say_what_control_answered(
    make_tui: TuiFactory, demo: Demo
) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        seen = notices(app)
        screen = await open_services(pilot)
        await pilot.press("b")  # roll back the only ready version of ctr
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm")
        await pilot.press("y")
        await until(pilot, lambda: any("no other ready version" in n for n in seen), what="the refusal")
        await pilot.press("down", "p")  # promote the one waiting for approval
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm")
        await pilot.press("y")
        await until(pilot, lambda: any("only a ready version can be promoted" in n for n in seen), what="why")
        await pilot.press("up", "w")
        await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the traffic form")
        form = app.screen
        weight = form.query_one("#f-trafficWeight", Input)
        weight.value = "50"
        await pilot.press("ctrl+s")
        status = form.query_one("#form-status", Static)
        await until(pilot, lambda: "takes 100%" in str(status.render()), what="control's answer in the form")
        await pilot.press("escape")
        await settle(pilot)
        assert [state_of(screen, n) for n in ("reasoning-ctr-1", "reasoning-ctr-2")] == [
            "ready",
            "waiting_approval",
        ]
        assert screen.rows[0]["trafficWeight"] == 100


async def test_describe_shows_the_infer_url_and_c_copies_the_endpoint(
    make_tui: TuiFactory, demo: Demo
) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_services(pilot)
        pane = screen.query_one("#describe", DescribePane)
        text = pane.plain()
        assert f"{ENDPOINT}/v2/health/ready" in text and f"{ENDPOINT}/v2/models/ctr/infer" in text
        assert f"curl -s -X POST {ENDPOINT}/v2/models/ctr/infer" in " ".join(text.split())
        await pilot.press("c")
        assert app.clipboard == ENDPOINT
        await pilot.press("C")
        assert app.clipboard.startswith(f"curl -s -X POST {ENDPOINT}/v2/models/ctr/infer")
        assert '-H "Authorization: Bearer $ATOM_TOKEN"' in app.clipboard  # the variable, not a secret
        await pilot.press("down")
        await until(pilot, lambda: "approve it (a)" in pane.plain(), what="the waiting one described")


@pytest.mark.parametrize("size", [SMALL, WIDE], ids=["80x24", "200x60"])
def test_services_snapshot(snap_compare: Any, snap_tui: TuiFactory, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await open_services(pilot)
        await settle(pilot)

    assert snap_compare(snap_tui(), terminal_size=size, run_before=run_before)
