"""The app shell against a real control: help, the `:` palette, themes, and the trouble banner
when control goes away, comes back, or refuses the token."""

from __future__ import annotations

import asyncio

from pydantic import SecretStr

from control.client import AsyncControlClient
from control.settings import Settings
from tests.e2e.conftest import LiveControl
from tests.tui.conftest import SMALL, TuiFactory, settle, until
from tui.app import make_app
from tui.config import TuiConfig
from tui.screens.help import HelpScreen
from tui.widgets.banner import TroubleBanner


async def test_help_lists_every_key_of_the_screen(make_tui: TuiFactory) -> None:
    app = make_tui()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        table = app.screen.query_one("DataTable")
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        keys = {str(row[0]) for row in rows}
        assert {":", "?", "r"} <= keys
        assert any("Refresh" in str(row[1]) for row in rows)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_palette_jumps_to_a_screen(make_tui: TuiFactory) -> None:
    app = make_tui()
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.current_mode == "tree"
        await pilot.press("colon")
        await until(pilot, lambda: type(app.screen).__name__ == "CommandPalette", what="the palette")
        await pilot.press(*"services")
        await settle(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: app.current_mode == "services", what="the services screen")


async def test_digit_keys_and_theme_toggle(make_tui: TuiFactory) -> None:
    app = make_tui(theme="light")
    async with app.run_test(size=SMALL) as pilot:
        assert app.theme == "textual-light"
        await pilot.press("ctrl+t")
        assert app.theme == "textual-dark"
        await pilot.press("2")
        assert app.current_mode == "runs"
        await pilot.press("1")
        assert app.current_mode == "tree"


async def test_banner_while_control_is_down_then_recovers(tui_settings: Settings) -> None:
    control = LiveControl(tui_settings)
    await asyncio.to_thread(control.__enter__)
    config = TuiConfig(url=control.url, refresh=0.2)
    app = make_app(config, AsyncControlClient(control.url, timeout=2), owns_client=True)
    try:
        async with app.run_test(size=SMALL) as pilot:
            app.goto("runs")
            await settle(pilot)
            banner = app.screen.query_one(TroubleBanner)
            assert app.trouble is None and not banner.has_class("shown")

            await asyncio.to_thread(control.__exit__, None, None, None)
            await until(pilot, lambda: app.trouble is not None, what="the banner")
            assert app.trouble is not None and app.trouble.kind == "unreachable"
            assert banner.has_class("shown")
            assert control.url in str(banner.render())

            control = LiveControl(tui_settings)  # same port, same store
            await asyncio.to_thread(control.__enter__)
            await until(pilot, lambda: app.trouble is None, timeout=15, what="recovery")
            assert not banner.has_class("shown")
            assert app.is_running
    finally:
        await asyncio.to_thread(control.__exit__, None, None, None)


async def test_banner_when_the_token_is_refused(tui_settings: Settings) -> None:
    settings = tui_settings.model_copy(update={"api_token": SecretStr("the-right-token")})
    with LiveControl(settings) as control:
        config = TuiConfig(url=control.url, refresh=0.2)
        app = make_app(config, AsyncControlClient(control.url, token="a-wrong-token"), owns_client=True)
        async with app.run_test(size=SMALL) as pilot:
            app.goto("runs")

            def banner_shown() -> bool:
                banners = app.screen.query(TroubleBanner)
                return app.trouble is not None and bool(banners) and banners.first().has_class("shown")

            await until(pilot, banner_shown, what="the banner")
            assert app.trouble is not None and app.trouble.kind == "auth"
            text = str(app.screen.query_one(TroubleBanner).render())
            assert "401" in text and "ATOM_TOKEN" in text
            assert "a-wrong-token" not in text and "the-right-token" not in text


async def test_an_unexpected_error_is_a_notice_not_a_crash(make_tui: TuiFactory) -> None:
    app = make_tui()

    async def broken(**_: object) -> None:
        raise ValueError("a bug in a screen")

    async with app.run_test(size=SMALL) as pilot:
        app.api.client.list_runs = broken  # type: ignore[method-assign,assignment]
        app.goto("runs")
        await until(
            pilot,
            lambda: any("a bug in a screen" in n.message for n in app._notifications),
            what="the notice",
        )
        assert app.is_running
        app.goto("tree")
        await settle(pilot)
        assert app.is_running and app.current_mode == "tree"
