"""The DAG screen against a real control: exam daily drawn as prep -> train -> score with their last
run states, moving the selection with arrows and tab, starting a node and the exam, opening a node's
last run and its form, live state refresh, and snapshots at 80x24 and 200x60."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console
from textual.widgets import Static

from control.client import AsyncControlClient
from control.schemas import NodeRelationIn
from control.store import models as m
from control.store.engine import Store
from tests.e2e.conftest import LiveControl
from tests.tui.conftest import SMALL, WIDE, TuiFactory, settle, until
from tests.tui.seed import Demo
from tui.format import STATE_STYLES
from tui.screens.dag import DagScreen
from tui.widgets.dag import DagView
from tui.widgets.form import FormScreen


async def open_dag(pilot: Any, demo: Demo) -> DagScreen:
    app = pilot.app
    app.open_exam(demo.ids["exams:daily"], "daily")
    await until(
        pilot, lambda: isinstance(app.screen, DagScreen) and app.screen.catalog is not None, what="the DAG"
    )
    await until(pilot, lambda: app.screen.dag.drawing.boxes, what="the drawing")
    screen = app.screen
    assert isinstance(screen, DagScreen)
    return screen


def name_of(screen: DagScreen) -> str | None:
    node = screen.selected()
    return node["nodeName"] if node else None


def detail_text(screen: DagScreen) -> str:
    console = Console(width=120, file=io.StringIO(), record=True)
    console.print(screen.query_one("#dag-detail", Static).content)
    return console.export_text()


def notices(app: Any) -> list[str]:
    return [n.message for n in app._notifications]


async def test_dag_shows_the_chain_with_states(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_dag(pilot, demo)
        ids = demo.ids
        view = screen.query_one(DagView)
        assert view.graph.layers == [[ids["nodes:prep"]], [ids["nodes:train"]], [ids["nodes:score"]]]
        assert view.graph.edges == [
            (ids["nodes:prep"], ids["nodes:train"]),
            (ids["nodes:train"], ids["nodes:score"]),
        ]
        text = view.drawing.text
        lines = text.plain.splitlines()
        arrow_row = lines[2]
        assert arrow_row.count("▶") == 2
        for name in ("prep", "train", "score", "PYTHON_DATA", "REASONING", "✔ succeeded", "✘ failed"):
            assert name in text.plain, name
        styles = {str(span.style) for span in text.spans}
        assert STATE_STYLES["succeeded"] in styles and STATE_STYLES["failed"] in styles
        assert max(len(line) for line in lines) <= view.scrollable_content_region.width  # fits 80 columns
        assert name_of(screen) == "prep"
        assert "ctr-prep" in detail_text(screen)


async def test_arrows_and_tab_move_the_selection(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_dag(pilot, demo)
        seen = []
        for key in ("right", "right", "right", "left", "tab", "tab", "shift+tab", "up", "down"):
            await pilot.press(key)
            seen.append(name_of(screen))
        assert seen == ["train", "score", "score", "train", "score", "prep", "score", "score", "score"]


async def test_s_starts_the_selected_node(make_tui: TuiFactory, demo: Demo, live: LiveControl) -> None:
    async with AsyncControlClient(live.url) as client:
        before = (await client.list_runs(node="prep", limit=1)).total
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_dag(pilot, demo)
        await pilot.press("right", "left")
        assert name_of(screen) == "prep"
        await pilot.press("s")
        await until(
            pilot, lambda: any("prep: started run" in m for m in notices(app)), what="the start notice"
        )
    async with AsyncControlClient(live.url) as client:
        page = await client.list_runs(node="prep", limit=1)
    assert page.total == before + 1


async def test_S_starts_the_exam(make_tui: TuiFactory, demo: Demo, live: LiveControl) -> None:
    async with AsyncControlClient(live.url) as client:
        before = (await client.list_runs(limit=1)).total
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        await open_dag(pilot, demo)
        await pilot.press("S")
        await until(
            pilot, lambda: any("exam daily" in m for m in notices(app)), what="a notice about the exam"
        )
        notice = next(m for m in notices(app) if "exam daily" in m)
        assert "runs queued" in notice, notice
    async with AsyncControlClient(live.url) as client:
        page = await client.list_runs(limit=5)
    assert page.total > before
    assert {run.node_name for run in page.items if run.id > before} & {"prep", "train", "score"}


async def test_states_refresh_live(make_tui: TuiFactory, demo: Demo, live: LiveControl) -> None:
    app = make_tui(refresh=0.2)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_dag(pilot, demo)
        box = next(b for b in screen.dag.boxes if b.name == "score")
        assert box.state == "failed"
        # score's last run changes state in the store: the box follows without a key press
        store = Store(live.settings.database_url)
        try:
            with store.transaction() as ses:
                run = ses.get(m.Runtime, demo.runs[10])
                assert run is not None and run.node_name == "score"
                run.state = "running"
        finally:
            store.dispose()

        def score_state() -> str | None:
            return next(b.state for b in screen.dag.boxes if b.name == "score")

        await until(pilot, lambda: score_state() == "running", what="score's new state")
        assert "▶ running" in screen.dag.drawing.text.plain


async def test_enter_opens_the_last_run_and_e_the_node_form(make_tui: TuiFactory, demo: Demo) -> None:
    run_detail = pytest.importorskip("tui.screens.run_detail")
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_dag(pilot, demo)
        await pilot.press("right", "right")
        assert name_of(screen) == "score"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, run_detail.RunDetailScreen), what="the run")
        shown: Any = app.screen
        assert shown.run_id == demo.runs[10]  # score's newest seeded run
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="back to the DAG")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, run_detail.RunDetailScreen), what="the run's log")
        shown = app.screen
        assert shown.initial_tab == "log"
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="back to the DAG")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the node form")
        shown = app.screen
        assert "score" in shown.form_title
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="back to the DAG")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DagScreen), what="back to the navigator")


def _snap_before(demo: Demo) -> Any:
    async def run_before(pilot: Any) -> None:
        screen = await open_dag(pilot, demo)
        await pilot.press("right")
        await until(pilot, lambda: "#10" in detail_text(screen), what="train's last run")
        await settle(pilot)

    return run_before


def test_snapshot_small(snap_compare: Any, snap_tui: TuiFactory, demo: Demo) -> None:
    assert snap_compare(snap_tui(), terminal_size=SMALL, run_before=_snap_before(demo))


def test_snapshot_wide(snap_compare: Any, snap_tui: TuiFactory, demo: Demo) -> None:
    assert snap_compare(snap_tui(), terminal_size=WIDE, run_before=_snap_before(demo))


async def test_a_long_dag_scrolls_to_the_selection(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    ids = demo.ids
    names = [f"step-{i}" for i in range(6)]
    async with AsyncControlClient(live.url) as client:
        exam = await client.create(
            "default", "exams", {"examName": "long", "experimentId": ids["experiments:ctr"]}
        )
        made = [
            await client.create(
                "default",
                "nodes",
                {"nodeName": n, "operatorRuntimeType": "PYTHON_DATA", "examId": exam["id"]},
            )
            for n in names
        ]
        for node, nxt in zip(made, [*made[1:], None], strict=True):
            await client.create_node_relation(
                NodeRelationIn(
                    node_id=node["id"],
                    next_node_id=nxt["id"] if nxt else None,
                    operator_id=ids["operators:ctr-prep"],
                    data_source_ids=[ids["sources:clicks"]],
                )
            )
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        app.open_exam(exam["id"], "long")
        await until(pilot, lambda: isinstance(app.screen, DagScreen) and app.screen.catalog, what="the DAG")
        screen = app.screen
        assert isinstance(screen, DagScreen)
        view = screen.dag
        assert len(view.graph.layers) == 6
        widest = max(len(line) for line in view.drawing.text.plain.splitlines())
        assert widest > view.scrollable_content_region.width  # larger than 80 columns
        assert view.scroll_x == 0
        for _ in range(5):
            await pilot.press("right")
        assert name_of(screen) == "step-5"
        await until(pilot, lambda: view.scroll_x > 0, what="the view to scroll to the selection")
        region = view.drawing.boxes[made[5]["id"]]
        assert region.right - view.scroll_x <= view.scrollable_content_region.width
