"""The node form against a real control: create a node with its relation and EDIT_FINISH in one
save, local and API refusals beside the right field (a bad name, a cycle, EDIT_FINISH without an
operator), the operator list following the runtime type, and an edit that keeps every value."""

from __future__ import annotations

from typing import Any

from textual.widgets import Checkbox, Input, Select, SelectionList, Static

from control.client import AsyncControlClient
from tests.e2e.conftest import LiveControl
from tests.tui.conftest import TuiFactory, until
from tests.tui.seed import Demo
from tests.tui.test_navigator import loaded, move_to, node_key
from tui.forms.node import NodeForm, check
from tui.screens.navigator import NavigatorScreen

SIZE = (100, 40)


async def open_form(pilot: Any, key: str, press: str) -> NodeForm:
    screen = await loaded(pilot)
    await move_to(pilot, screen, key)
    await pilot.press(press)
    await until(pilot, lambda: isinstance(pilot.app.screen, NodeForm), what="the node form")
    form = pilot.app.screen
    assert isinstance(form, NodeForm)
    return form


def error(form: NodeForm, name: str) -> str:
    box = form.query_one(f"#e-{name}", Static)
    return str(box.content) if box.has_class("shown") else ""


def shown_errors(form: NodeForm) -> dict[str, str]:
    return {spec.name: error(form, spec.name) for spec in form.fields if error(form, spec.name)}


async def get_node(live: LiveControl, name: str) -> dict[str, Any]:
    async with AsyncControlClient(live.url) as client:
        return await client.get("default", "nodes", name)


async def test_create_a_node_with_its_relation(make_tui: TuiFactory, demo: Demo, live: LiveControl) -> None:
    ids = demo.ids
    app = make_tui()
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, f"exam:default:{ids['exams:daily']}", "n")
        assert form.query_one("#f-examId", Select).value == ids["exams:daily"]  # opened on the exam
        assert form.query_one("#f-nodeName", Input).has_focus
        await pilot.press(*"eval")
        form.query_one("#f-operatorRuntimeType", Select).value = "REASONING"
        await pilot.pause()
        operator = form.query_one("#f-operatorId", Select)
        # only operators of the runtime type are offered
        assert [value for _, value in operator._options if value is not Select.NULL] == [
            ids["operators:ctr-score"]
        ]
        operator.value = ids["operators:ctr-score"]
        sources = form.query_one("#f-dataSourceIds", SelectionList)
        sources.select(ids["sources:holdout"])
        sources.select(ids["sources:scores"])
        form.query_one("#f-modelId", Select).value = ids["models:ctr"]
        form.query_one("#f-serviceInfoId", Select).value = ids["service-infos:small"]
        form.query_one("#f-editFinish", Checkbox).value = True
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, NavigatorScreen), what="the form to close")
        screen = app.screen
        assert isinstance(screen, NavigatorScreen)
        await until(pilot, lambda: getattr(screen.selected(), "name", None) == "eval", what="eval selected")
    node = await get_node(live, "eval")
    assert node["examId"] == ids["exams:daily"]
    assert node["operatorRuntimeType"] == "REASONING"
    assert node["nodeStatus"] == "EDIT_FINISH"
    rel = node["relation"]
    assert rel["operatorId"] == ids["operators:ctr-score"]
    assert rel["dataSourceIds"] == [ids["sources:holdout"], ids["sources:scores"]]
    assert rel["modelId"] == ids["models:ctr"]
    assert rel["serviceInfoId"] == ids["service-infos:small"]
    assert rel["nextNodeId"] is None


async def test_a_bad_name_shows_beside_the_name(make_tui: TuiFactory, demo: Demo, live: LiveControl) -> None:
    app = make_tui()
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, "group:default:(no exam)", "n")
        await pilot.press(*"Bad_Name")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: error(form, "nodeName"), what="the name error")
        assert "not a valid Kubernetes name" in error(form, "nodeName")
        assert list(shown_errors(form)) == ["nodeName"]
        assert app.screen is form  # still open, with what was typed
        assert form.query_one("#f-nodeName", Input).value == "Bad_Name"
    async with AsyncControlClient(live.url) as client:
        assert all(n["nodeName"] != "Bad_Name" for n in await client.list("default", "nodes"))


async def test_edit_finish_needs_an_operator(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, "group:default:(no exam)", "n")
        await pilot.press(*"lonely")
        form.query_one("#f-editFinish", Checkbox).value = True
        form.query_one("#f-modelId", Select).value = demo.ids["models:ctr"]
        await pilot.press("ctrl+s")
        await until(pilot, lambda: error(form, "editFinish"), what="the EDIT_FINISH error")
        assert "operator" in error(form, "editFinish")
        assert "required" in error(form, "operatorId")


async def test_a_cycle_shows_beside_the_next_node(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    ids = demo.ids
    app = make_tui()
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, node_key(demo, "score"), "e")
        form.query_one("#f-nextNodeId", Select).value = ids["nodes:prep"]
        await pilot.press("ctrl+s")
        await until(pilot, lambda: error(form, "nextNodeId"), what="control's refusal beside the next node")
        assert "cycle" in error(form, "nextNodeId")
        assert list(shown_errors(form)) == ["nextNodeId"]
        assert app.screen is form
    node = await get_node(live, "score")
    assert node["relation"]["nextNodeId"] is None


async def test_editing_keeps_every_value(make_tui: TuiFactory, demo: Demo, live: LiveControl) -> None:
    ids = demo.ids
    before = await get_node(live, "train")
    app = make_tui()
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, node_key(demo, "train"), "e")
        assert "train" in form.form_title and "TRAIN" in form.form_title
        assert not form.query("#f-nodeName")  # a node's name is fixed
        assert form.query_one("#f-examId", Select).value == ids["exams:daily"]
        assert form.query_one("#f-nodeEpoch", Input).value == "1"
        assert form.query_one("#f-operatorId", Select).value == ids["operators:ctr-train"]
        assert (
            form.query_one("#f-dataSourceIds", SelectionList).selected == before["relation"]["dataSourceIds"]
        )
        assert form.query_one("#f-modelId", Select).value == ids["models:ctr"]
        assert form.query_one("#f-serviceInfoId", Select).value == ids["service-infos:small"]
        assert form.query_one("#f-nextNodeId", Select).value == ids["nodes:score"]
        assert form.query_one("#f-editFinish", Checkbox).value is True
        form.query_one("#f-maxRetries", Input).value = "3"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, NavigatorScreen), what="the form to close")
    after = await get_node(live, "train")
    assert after["maxRetries"] == 3
    assert after["relation"] == before["relation"]
    assert after["nodeStatus"] == "EDIT_FINISH"
    assert {k: v for k, v in after.items() if k not in ("maxRetries", "updateTime")} == {
        k: v for k, v in before.items() if k not in ("maxRetries", "updateTime")
    }


def test_local_checks_match_the_api() -> None:
    assert check({"nodeName": "ok-name"}, new=True) == {}
    assert "nodeName" in check({"nodeName": "-bad"}, new=True)
    assert check({"nodeEpoch": 0}, new=False) == {"nodeEpoch": "Input should be greater than or equal to 1"}
    assert check({"maxRetries": 21}, new=False) == {"maxRetries": "Input should be less than or equal to 20"}
    assert "operatorId" in check({"nextNodeId": 3}, new=False)
    assert "operatorId" in check({}, new=False, bound=True)
