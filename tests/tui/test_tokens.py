"""Tokens screen against a live control: reached from the palette, lists the user's tokens without
secrets, makes one and shows its secret once, revokes one after a confirm."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input, Static

from control.client import AsyncControlClient
from tests.e2e.conftest import LiveControl
from tests.tui.conftest import WIDE, settle, until
from tests.tui.test_resources import notices
from tui.app import make_app
from tui.config import TuiConfig
from tui.screens.tokens import SecretScreen, TokensScreen
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.form import FormScreen

PASSWORD = "alice-password"


async def alice_token(live: LiveControl) -> str:
    """Make alice (the first user, an admin) as the local admin, log her in, give her a read token."""
    async with AsyncControlClient(live.url) as client:
        await client.create_user("alice", PASSWORD, admin=True)
        made = await client.login("alice", PASSWORD)
    async with AsyncControlClient(live.url, token=made.token) as client:
        await client.create_token("ci", scope="read")
    return made.token


def cells(screen: TokensScreen) -> list[list[str]]:
    return [[str(c) for c in screen.table.get_row_at(i)] for i in range(screen.table.row_count)]


async def test_tokens_screen_lists_makes_and_revokes(live: LiveControl) -> None:
    token = await alice_token(live)
    app = make_app(
        TuiConfig(url=live.url, refresh=0.3),
        AsyncControlClient(live.url, token=token, timeout=10),
        owns_client=True,
    )
    async with app.run_test(size=WIDE) as pilot:
        seen = notices(app)
        await pilot.press("colon")
        await until(pilot, lambda: type(app.screen).__name__ == "CommandPalette", what="the palette")
        await pilot.press(*":tokens")
        await settle(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TokensScreen) and app.screen.loaded, what="tokens")
        screen = app.screen
        assert isinstance(screen, TokensScreen)
        rows = cells(screen)
        assert [r[1] for r in rows][1] == "ci" and rows[1][2] == "read" and rows[1][3] == "all"
        assert rows[0][1].startswith("login-") and rows[0][6] == "active"
        assert all(token not in str(r) for r in screen.rows) and all("token" not in r for r in screen.rows)

        # make one: the secret shows once, in a dialog
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the form")
        app.screen.query_one("#f-tokenName", Input).value = "nightly"
        app.screen.query_one("#f-spaces", Input).value = "default"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, SecretScreen), what="the secret")
        dialog = app.screen
        assert isinstance(dialog, SecretScreen)
        secret = dialog.made.token
        assert secret.startswith("atom_") and secret in str(dialog.query_one("#secret", Static).render())
        await pilot.press("c")
        assert app.clipboard == secret
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is screen, what="the dialog to close")
        await until(pilot, lambda: "nightly" in [r["tokenName"] for r in screen.rows], what="the new row")
        nightly = next(r for r in screen.rows if r["tokenName"] == "nightly")
        assert nightly["spaces"] == ["default"] and nightly["scope"] == "write"
        assert secret not in str(screen.rows) and secret not in str(cells(screen))

        # revoke it: a confirm first, "no" keeps it
        screen.select(str(nightly["id"]))
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm")
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen, what="the confirm to close")
        await settle(pilot)
        assert next(r for r in screen.rows if r["tokenName"] == "nightly")["state"] == "active"
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm")
        await pilot.press("y")
        await until(pilot, lambda: any("nightly revoked" in n for n in seen), what="the notice")
        await until(
            pilot,
            lambda: next(r for r in screen.rows if r["tokenName"] == "nightly")["state"] == "revoked",
            what="the revoked state",
        )
        async with AsyncControlClient(live.url, token=secret) as client:
            try:
                await client.whoami()
            except Exception as exc:  # noqa: BLE001 - the message is what is checked
                assert "was revoked" in str(exc)
            else:
                raise AssertionError("a revoked token was accepted")


async def test_a_refused_token_stays_in_the_form(live: LiveControl) -> None:
    token = await alice_token(live)

    async def read_token() -> str:
        async with AsyncControlClient(live.url, token=token) as client:
            return (await client.create_token("viewer", scope="read")).token

    read = await read_token()
    app = make_app(
        TuiConfig(url=live.url, refresh=0.3),
        AsyncControlClient(live.url, token=read, timeout=10),
        owns_client=True,
    )
    async with app.run_test(size=WIDE) as pilot:
        app.goto("tokens")
        await until(pilot, lambda: isinstance(app.screen, TokensScreen) and app.screen.loaded, what="tokens")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the form")
        form: Any = app.screen
        form.query_one("#f-tokenName", Input).value = "wider"
        await pilot.press("ctrl+s")
        status = form.query_one("#form-status", Static)
        await until(pilot, lambda: "scope read may not POST" in str(status.render()), what="the refusal")
        assert isinstance(app.screen, FormScreen)  # what was typed stays, with the reason
