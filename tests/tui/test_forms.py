"""The source, operator, model and service-info forms against a live control: create through each
form (what control stored), edits that keep what the form does not show, and local JSON checks."""

from __future__ import annotations

from typing import Any

from textual.widgets import Select

from tests.tui.conftest import SMALL, WIDE, TuiFactory, until
from tests.tui.seed import Demo
from tests.tui.test_connection_form import error_of, fill, open_form
from tests.tui.test_resources import keys, open_screen
from tui.screens.resources import ResourceScreen
from tui.screens.table import TableScreen


async def save(pilot: Any, screen: TableScreen, name: str) -> dict[str, Any]:
    """Press ctrl+s; wait for the form to close and `name` to be listed; what control stored."""
    assert isinstance(screen, ResourceScreen)
    await pilot.press("ctrl+s")
    await until(pilot, lambda: pilot.app.screen is screen, what="the form to close")
    await until(pilot, lambda: name in keys(screen), what=f"{name} in the table")
    stored: dict[str, Any] = await pilot.app.api.client.get("default", screen.KIND, name)
    return stored


async def test_create_a_source(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_screen(pilot, "sources")
        form = await open_form(pilot, "n")
        options = [value for _, value in form.query_one("#f-connectionName", Select)._options]  # noqa: SLF001
        assert {"lake", "warehouse"} <= set(options)  # the space's connections to pick from
        fill(form, sourceName="events", connectionName="lake", sourceType="test_source")
        fill(form, operateExecute="events.csv", dataFormat="csv", paginateReadNum=500, disposable=True)
        fill(form, dataExecuteAfter="mypkg.hooks:after")
        stored = await save(pilot, screen, "events")
        assert stored["connectionName"] == "lake" and stored["sourceType"] == "test_source"
        assert stored["operateExecute"] == "events.csv" and stored["paginateReadNum"] == 500
        assert stored["disposable"] is True and stored["asyncLoad"] is True
        assert stored["dataExecuteAfter"] == "mypkg.hooks:after"


async def test_edit_a_source_moves_it_to_another_connection(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_screen(pilot, "sources")
        form = await open_form(pilot, "e")  # clicks
        assert form.query_one("#f-connectionName", Select).value == "lake"
        fill(form, connectionName="warehouse", operateExecute="SELECT * FROM clicks")
        stored = await save(pilot, screen, "clicks")
        assert stored["connectionName"] == "warehouse" and stored["operateExecute"] == "SELECT * FROM clicks"
        assert stored["sourceType"] == "source" and stored["dataFormat"] == "csv"  # kept


async def test_create_an_operator(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_screen(pilot, "operators")
        form = await open_form(pilot, "n")
        fill(form, operatorName="ctr-eval", operatorRuntimeType="REASONING", moduleName="mypkg.eval")
        fill(form, executeObject="Eval", operatorEpoch=2, deployType="AUTO_DEPLOY", operatorPriority=5)
        fill(form, operatorConf='{"threshold": 0.5}', environmentConf='{"OMP_NUM_THREADS": "4"}')
        stored = await save(pilot, screen, "ctr-eval")
        assert stored["operatorRuntimeType"] == "REASONING" and stored["executeObject"] == "Eval"
        assert stored["operatorEpoch"] == 2 and stored["deployType"] == "AUTO_DEPLOY"
        assert stored["operatorConf"] == {"threshold": 0.5} and stored["operatorPriority"] == 5
        assert stored["environmentConf"] == {"OMP_NUM_THREADS": "4"}


async def test_operator_form_checks_json_and_required_fields_locally(
    make_tui: TuiFactory, demo: Demo
) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        await open_screen(pilot, "operators")
        form = await open_form(pilot, "n")
        fill(form, operatorName="broken", operatorConf="{not json")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: error_of(form, "operatorConf"), what="the JSON error")
        assert "not JSON" in error_of(form, "operatorConf")
        assert "required" in error_of(form, "moduleName")


async def test_operator_epoch_zero_is_refused_by_control_beside_the_field(
    make_tui: TuiFactory, demo: Demo
) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        await open_screen(pilot, "operators")
        form = await open_form(pilot, "n")
        fill(form, operatorName="zero", moduleName="m", executeObject="O", operatorEpoch=0)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: error_of(form, "operatorEpoch"), what="control's epoch error")
        assert "1" in error_of(form, "operatorEpoch")


async def test_edit_an_operator_keeps_what_the_form_leaves_alone(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_screen(pilot, "operators")
        form = await open_form(pilot, "e")  # ctr-train
        fill(form, operatorEpoch=5)
        stored = await save(pilot, screen, "ctr-train")
        assert stored["operatorEpoch"] == 5
        assert stored["operatorConf"] == {"labelColumn": "label"} and stored["deployType"] == "TOUCH_DEPLOY"
        assert stored["moduleName"] == "runtime_agent.examples.train_example"


async def test_create_a_model(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        screen = await open_screen(pilot, "models")
        form = await open_form(pilot, "n")
        fill(form, modelName="ctr-v2", connectionName="warehouse", modelCreateType="UPLOAD")
        stored = await save(pilot, screen, "ctr-v2")
        assert stored["connectionName"] == "warehouse" and stored["modelCreateType"] == "UPLOAD"
        assert stored["versions"] == []


async def test_create_a_service_info(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_screen(pilot, "service-infos")
        form = await open_form(pilot, "n")
        fill(
            form, siName="gpu-large", siRuntimePattern="KUBERNETES", siNodeNum=2, siImageName="atom/runtime:1"
        )
        fill(form, siCpu=8, siGpu=1, siMemory=32768, siDisplayMemory=16384, siLabel="pool=gpu")
        stored = await save(pilot, screen, "gpu-large")
        assert stored["siRuntimePattern"] == "KUBERNETES" and stored["siNodeNum"] == 2
        assert (stored["siCpu"], stored["siGpu"], stored["siMemory"], stored["siDisplayMemory"]) == (
            8,
            1,
            32768,
            16384,
        )
        assert stored["siImageName"] == "atom/runtime:1" and stored["siLabel"] == "pool=gpu"
