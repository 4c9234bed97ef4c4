"""The connection form against a live control: create (password stored, never shown), control's
422 beside the field, local checks, a taken name, edit keeping the stored password, Save & test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from textual.widgets import Checkbox, Input, Select, Static, TextArea

from control.store import models as m
from tests.e2e.conftest import LiveControl
from tests.tui.conftest import SMALL, WIDE, TuiFactory, settle, until
from tests.tui.seed import Demo
from tests.tui.test_resources import PASSWORD, keys, open_screen, screen_text
from tui.widgets.form import FormScreen

NEW_PASSWORD = "An0ther-Secr3t"


async def open_form(pilot: Any, key: str) -> FormScreen:
    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, FormScreen), what="the form")
    form: FormScreen = pilot.app.screen
    return form


def fill(form: FormScreen, **values: Any) -> None:
    """Put values in the form's fields (by wire name) as a user would leave them."""
    for name, value in values.items():
        widget = form.query_one(f"#f-{name}")
        if isinstance(widget, Select | Checkbox):
            widget.value = value
        elif isinstance(widget, TextArea):
            widget.text = value
        else:
            assert isinstance(widget, Input)
            widget.value = str(value)


def error_of(form: FormScreen, name: str) -> str:
    box = form.query_one(f"#e-{name}", Static)
    return str(box.render()) if box.has_class("shown") else ""


def form_status(form: FormScreen) -> str:
    return str(form.query_one("#form-status", Static).render())


def stored_password(live: LiveControl, name: str) -> str:
    orch = live.app.state.orchestrator
    with orch.store.transaction() as ses:
        row = ses.scalars(select(m.Connection).where(m.Connection.connect_name == name)).one()
        return str(orch.vault.decrypt(row.connect_password_enc))


async def test_create_connection_through_the_form(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_screen(pilot, "connections")
        form = await open_form(pilot, "n")
        fill(form, connectName="reports", connectType="MYSQL", connectAddr="db.internal", connectPort=3306)
        fill(form, connectAccount="reporter", connectSpace="bi")
        await pilot.click("#f-connectPassword")
        await pilot.press(*NEW_PASSWORD)
        await settle(pilot)
        assert NEW_PASSWORD not in screen_text(app)  # masked while typed
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen, what="the form to close")
        await until(pilot, lambda: "reports" in keys(screen), what="the new row")
        assert screen.selected_key() == "reports"
        saved = await app.api.client.get("default", "connections", "reports")
        assert (
            saved["connectType"] == "MYSQL" and saved["connectPort"] == 3306 and saved["connectSpace"] == "bi"
        )
        assert saved["hasPassword"] is True
        assert stored_password(live, "reports") == NEW_PASSWORD
        assert NEW_PASSWORD not in screen_text(app)


async def test_bad_port_shows_controls_error_beside_the_field(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        await open_screen(pilot, "connections")
        form = await open_form(pilot, "n")
        fill(form, connectName="badport", connectType="MYSQL", connectAddr="db", connectPort=70000)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: error_of(form, "connectPort"), what="the port error")
        assert "65535" in error_of(form, "connectPort")
        assert app.screen is form and form.query_one("#f-connectPort", Input).value == "70000"  # kept
        assert not error_of(form, "connectName")
        fill(form, connectPort=3307)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is not form, what="the form to close after the fix")
        assert (await app.api.client.get("default", "connections", "badport"))["connectPort"] == 3307


async def test_missing_name_is_caught_before_asking_control(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        await open_screen(pilot, "connections")
        form = await open_form(pilot, "n")
        fill(form, connectAddr="/somewhere")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: error_of(form, "connectName"), what="the name error")
        assert "required" in error_of(form, "connectName")
        assert "fix the marked fields" in form_status(form)
        assert form.query_one("#f-connectName").has_focus
        assert len(await app.api.client.list("default", "connections")) == 2


async def test_a_taken_name_is_refused_beside_the_name(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        await open_screen(pilot, "connections")
        form = await open_form(pilot, "n")
        fill(form, connectName="warehouse", connectType="FILE", connectAddr="/tmp")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: error_of(form, "connectName"), what="the name error")
        assert "taken" in error_of(form, "connectName")
        warehouse = await app.api.client.get("default", "connections", "warehouse")
        assert warehouse["connectType"] == "MYSQL"  # not replaced


async def test_edit_keeps_the_stored_password_when_left_blank(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_screen(pilot, "connections")
        await pilot.press("down")
        form = await open_form(pilot, "e")
        assert "warehouse" in form.form_title
        assert not form.query("#f-connectName")  # the name is fixed once made
        assert form.query_one("#f-connectPassword", Input).value == ""
        assert any("(stored)" in str(help_.render()) for help_ in form.query(".field-help").results(Static))
        assert form.query_one("#f-connectAccount", Input).value == "analyst"
        fill(form, connectAccount="analyst2")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen, what="the form to close")
        saved = await app.api.client.get("default", "connections", "warehouse")
        assert saved["connectAccount"] == "analyst2" and saved["connectPort"] == 3306 and saved["hasPassword"]
        assert stored_password(live, "warehouse") == PASSWORD


async def test_save_and_test_reports_in_the_form(make_tui: TuiFactory, demo: Demo, tmp_path: Path) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_screen(pilot, "connections")
        form = await open_form(pilot, "n")
        fill(form, connectName="lake2", connectType="FILE", connectAddr=str(tmp_path / "data"))
        await pilot.click("#act-test")
        await until(pilot, lambda: "saved; ok" in form_status(form), what="the test result")
        assert form.query_one("#form-status").has_class("ok")
        assert (await app.api.client.get("default", "connections", "lake2"))["connectType"] == "FILE"
        await pilot.click("#act-test")  # again: the same connection, saved again, not "taken"
        await until(pilot, lambda: "saved; ok" in form_status(form) and not error_of(form, "connectName"))
        await pilot.press("escape")
        await until(pilot, lambda: "lake2" in keys(screen), what="the saved row")
        await pilot.press("down")
        await until(pilot, lambda: screen.selected_key() == "warehouse", what="warehouse selected")
        form = await open_form(pilot, "e")
        await pilot.click("#act-test")
        await until(pilot, lambda: "test failed" in form_status(form), what="the failed test")
        assert form.query_one("#form-status").has_class("error")
        assert "127.0.0.1:3306" in form_status(form) and PASSWORD not in form_status(form)
