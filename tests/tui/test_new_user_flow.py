"""The issue's "done when", driven through the dashboard alone: create a connection, sources, an
operator, a model and a node in forms, start the node, watch its log and loss curve, then call the
deployed service at the endpoint the Services screen shows. Real control, real agent, real Ray."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from textual.widgets import Checkbox, DataTable, Input, Select, SelectionList, TextArea

from control.cli.services import v2_request
from tests.e2e.conftest import LiveControl, make_tabular
from tests.tui.conftest import TuiFactory, screen_text, settle, until
from tui.widgets.form import FormScreen

pytestmark = [pytest.mark.e2e, pytest.mark.ray, pytest.mark.slow]


async def fill_form(pilot: Any, values: dict[str, Any], *, title: str) -> None:
    """Type into the open form like a user, then ctrl+s; wait until control accepted it."""
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, FormScreen), what=f"the {title} form")
    form = app.screen
    assert isinstance(form, FormScreen)
    for name, value in values.items():
        widget = form.query_one(f"#f-{name}")
        if isinstance(widget, Input):
            widget.focus()
            widget.value = ""
            text = str(value)
            if text.isalnum() or set(text) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_"):
                await pilot.press(*text)  # typed key by key
            else:
                widget.value = text  # paths and dotted names: keys like "/" have other names
        elif isinstance(widget, Select):
            widget.value = value
        elif isinstance(widget, SelectionList):
            for item in value:
                widget.select(item)
        elif isinstance(widget, Checkbox):
            widget.value = bool(value)
        elif isinstance(widget, TextArea):
            widget.load_text(json.dumps(value))
    await pilot.press("ctrl+s")
    await until(
        pilot,
        lambda: not isinstance(app.screen, FormScreen),
        timeout=15,
        what=f"control to accept the {title} form (status: {_status(form)})",
    )


def _status(form: FormScreen) -> str:
    try:
        return str(form.query_one("#form-status").render())
    except Exception:  # noqa: BLE001 - only for the failure message
        return "?"


async def walk_to(pilot: Any, tree: Any, tree_node: Any) -> None:
    """Arrow keys until the cursor is on `tree_node`'s line."""
    for _ in range(40):
        if tree.cursor_line == tree_node.line:
            return
        await pilot.press("down" if tree.cursor_line < tree_node.line else "up")
    raise AssertionError(screen_text(pilot.app))


async def new_via_palette(pilot: Any, what: str) -> None:
    """`:` then `new <what>`, as a user creates anything from anywhere."""
    await pilot.press("colon")
    await until(pilot, lambda: type(pilot.app.screen).__name__ == "CommandPalette", what="the palette")
    await pilot.press(*f"new {what}".replace(" ", " "))
    await settle(pilot)
    await pilot.press("enter")


def option_value(form: FormScreen, name: str, label: str) -> Any:
    """The value behind the option labelled `label` (its first word) in select or list `name`, as shown."""
    widget = form.query_one(f"#f-{name}")
    if isinstance(widget, SelectionList):
        options = [(str(widget.get_option_at_index(i).prompt), widget.get_option_at_index(i).value)
                   for i in range(widget.option_count)]  # fmt: skip
    else:
        assert isinstance(widget, Select)
        options = [(str(text), value) for text, value in widget._options]
    for text, value in options:
        if text.split(" ")[0] == label:
            return value
    raise AssertionError(f"{name}: no option {label!r} in {[t for t, _ in options]}")


async def test_a_new_user_trains_and_serves_from_the_dashboard(
    live: LiveControl, make_tui: TuiFactory, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    make_tabular(data, rows=400)
    app = make_tui(refresh=0.5)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)

        # a connection, two sources, an operator and a model, each from its own screen
        app.goto("connections")
        await settle(pilot)
        await pilot.press("n")
        await fill_form(
            pilot,
            {"connectName": "files", "connectType": "FILE", "connectAddr": str(data)},
            title="connection",
        )
        app.goto("sources")
        await settle(pilot)
        for name, role, target in (("train", "source", "train.csv"), ("test", "test_source", "test.csv")):
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the source form")
            await fill_form(
                pilot,
                {"sourceName": name, "connectionName": option_value(app.screen, "connectionName", "files"),
                 "sourceType": role, "operateExecute": target, "dataFormat": "csv"},
                title="source",
            )  # fmt: skip
        app.goto("operators")
        await settle(pilot)
        await pilot.press("n")
        await fill_form(
            pilot,
            {
                "operatorName": "tabular",
                "operatorRuntimeType": "TRAIN",
                "moduleName": "runtime_agent.examples.train_example",
                "executeObject": "TrainExample",
                "operatorEpoch": 3,
                "deployType": "AUTO_DEPLOY",
                "operatorConf": {"labelColumn": "label"},
            },
            title="operator",
        )
        app.goto("models")
        await settle(pilot)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the model form")
        await fill_form(
            pilot,
            {"modelName": "tabular", "connectionName": option_value(app.screen, "connectionName", "files")},
            title="model",
        )

        # the node, from the palette, bound to all of it and marked EDIT_FINISH
        app.goto("tree")
        await settle(pilot)
        await new_via_palette(pilot, "node")
        await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the node form")
        form = app.screen
        assert isinstance(form, FormScreen)
        form.query_one("#f-operatorRuntimeType", Select).value = "TRAIN"  # the operator list follows it
        await settle(pilot)
        await fill_form(
            pilot,
            {
                "nodeName": "train-tabular",
                "operatorRuntimeType": "TRAIN",
                "operatorId": option_value(form, "operatorId", "tabular"),
                "dataSourceIds": [option_value(form, "dataSourceIds", "train"),
                                  option_value(form, "dataSourceIds", "test")],
                "modelId": option_value(form, "modelId", "tabular"),
                "editFinish": True,
            },
            title="node",
        )  # fmt: skip

        # start it from the navigator: select the node's line, `s`
        nav = app.screen
        node_line = await until(
            pilot,
            lambda: next((k for k in getattr(nav, "_by_key", {}) if k.startswith("node:")), None),
            what="the node in the tree",
        )
        tree = nav.nav_tree  # type: ignore[attr-defined]
        group = next(k for k in nav._by_key if k.startswith("group:"))  # type: ignore[attr-defined]
        await walk_to(pilot, tree, nav._by_key[group])  # type: ignore[attr-defined]
        await pilot.press("enter")  # expand "(no exam)"
        await settle(pilot)
        await walk_to(pilot, tree, nav._by_key[node_line])  # type: ignore[attr-defined]
        await pilot.press("s")
        async with httpx.AsyncClient(base_url=live.url, timeout=60) as http:
            runs = await until(
                pilot,
                lambda: _runs(http),
                what="the run to be created",
            )
        run_id = runs[0]["id"]

        # its log and loss curve, live, in the run detail
        await pilot.press("l")
        await until(pilot, lambda: type(app.screen).__name__ == "RunDetailScreen", what="the run detail")
        await until(pilot, lambda: "train" in screen_text(app), timeout=120, what="log lines")
        await pilot.press("m")
        await until(pilot, lambda: "loss" in screen_text(app), timeout=180, what="the loss curve")
        await until(pilot, lambda: "succeeded" in screen_text(app), timeout=240, what="the run to succeed")

        # the service it deployed, and its endpoint, on the Services screen
        app.goto("services")
        await settle(pilot)
        endpoint = await until(pilot, lambda: _ready_endpoint(app), timeout=180, what="a ready service")
        assert endpoint in screen_text(app) or endpoint[:30] in screen_text(app)
        rows = pd.read_csv(data / "test.csv").drop(columns=["label"]).head(3)
        async with httpx.AsyncClient(timeout=30) as http:
            ready = await http.get(f"{endpoint}/v2/health/ready")
            assert ready.status_code == 200
            answer = await http.post(f"{endpoint}/v2/models/tabular/infer", json=v2_request(rows))
            assert answer.status_code == 200, answer.text
            outputs = answer.json()["outputs"]
            assert outputs and len(outputs[0]["data"]) == 3
        assert run_id


async def _runs(http: httpx.AsyncClient) -> list[dict[str, Any]] | None:
    items = (await http.get("/api/v1/runs", params={"node": "train-tabular"})).json()["items"]
    return items or None


def _ready_endpoint(app: Any) -> str | None:
    table = app.screen.query_one(DataTable)
    for row_key in table.rows:
        row = [str(c) for c in table.get_row(row_key)]
        if any("ready" in c for c in row):
            for cell in row:
                if cell.startswith("http"):
                    return _full_endpoint(app, cell)
    return None


def _full_endpoint(app: Any, shown: str) -> str:
    services = getattr(app.screen, "_services", None) or []
    for service in services:
        endpoint = getattr(service, "endpoint", None) or ""
        if endpoint.startswith(shown.rstrip("…")):
            return str(endpoint)
    return shown
