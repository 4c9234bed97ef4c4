"""The navigator against a real control with the demo space: the tree with counts and state colours,
the detail pane, start / finish / stop / new / edit from the tree, refreshes that keep the cursor,
and snapshots at 80x24 and 200x60."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console, RenderableType
from rich.text import Text
from textual.widgets import Input, Select, Static

from control.client import AsyncControlClient
from tests.e2e.conftest import LiveControl
from tests.tui.conftest import SMALL, WIDE, TuiFactory, settle, until
from tests.tui.seed import Demo
from tui.format import STATE_STYLES
from tui.screens.dag import DagScreen
from tui.screens.navigator import NavigatorScreen
from tui.widgets.form import FormScreen
from tui.widgets.tree_labels import Catalog


def plain(renderable: RenderableType, width: int = 100) -> str:
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(renderable)
    return console.export_text()


def nav(app: Any) -> NavigatorScreen:
    screen = app.screen
    assert isinstance(screen, NavigatorScreen)
    return screen


async def loaded(pilot: Any) -> NavigatorScreen:
    app = pilot.app
    await until(
        pilot,
        lambda: isinstance(app.screen, NavigatorScreen) and "default" in app.screen._catalogs,
        what="the tree",
    )
    return nav(app)


def label(screen: NavigatorScreen, key: str) -> str:
    text = screen._by_key[key].label
    return text.plain if isinstance(text, Text) else str(text)


def cursor_key(screen: NavigatorScreen) -> str | None:
    item = screen.selected()
    return item.key if item else None


async def move_to(pilot: Any, screen: NavigatorScreen, key: str) -> None:
    """Walk the cursor with the arrow keys to the line of `key`."""
    target = screen._by_key[key]
    _ = screen.nav_tree.last_line
    for _step in range(50):
        current = screen.nav_tree.cursor_line
        if current == target.line:
            break
        await pilot.press("down" if current < target.line else "up")
    assert cursor_key(screen) == key


def detail_text(screen: Any, widget_id: str = "#nav-detail") -> str:
    return plain(screen.query_one(widget_id, Static).content)


async def api(live: LiveControl, fn: Any) -> Any:
    async with AsyncControlClient(live.url) as client:
        return await fn(client)


def notices(app: Any) -> list[str]:
    return [n.message for n in app._notifications]


def node_key(demo: Demo, name: str) -> str:
    return f"node:default:{demo.ids['nodes:' + name]}"


async def test_tree_shows_spaces_experiments_exams_and_nodes(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        screen = await loaded(pilot)
        ids = demo.ids
        assert label(screen, "space:default:default").startswith("default  1 experiment · 4 nodes")
        assert label(screen, f"experiment:default:{ids['experiments:ctr']}") == "ctr  1 exam · 3 nodes"
        assert label(screen, f"exam:default:{ids['exams:daily']}").startswith("daily  3 nodes")
        exam = screen._by_key[f"exam:default:{ids['exams:daily']}"]
        assert [child.data.name for child in exam.children if child.data] == ["prep", "train", "score"]
        group = screen._by_key["group:default:(no exam)"]
        assert label(screen, "group:default:(no exam)") == "(no exam)  1 node"
        assert [child.data.name for child in group.children if child.data] == ["adhoc"]
        # each node's last run state, in its colour; adhoc is not EDIT_FINISH yet (✎)
        for name, state in (("prep", "succeeded"), ("score", "failed"), ("adhoc", "running")):
            text = screen._by_key[node_key(demo, name)].label
            assert isinstance(text, Text)
            assert state in text.plain
            assert any(str(span.style) == STATE_STYLES[state] for span in text.spans), name
        assert "✎" in label(screen, node_key(demo, "adhoc"))
        assert "✎" not in label(screen, node_key(demo, "prep"))


async def test_selecting_a_node_shows_its_details(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        screen = await loaded(pilot)
        await move_to(pilot, screen, node_key(demo, "train"))
        await until(pilot, lambda: "#10" in detail_text(screen), what="the last run in the details")
        text = detail_text(screen)
        for part in (
            "TRAIN",
            "EDIT_FINISH",
            "daily",
            "ctr-train",
            "clicks (source)",
            "scores (sink)",
            "small",
        ):
            assert part in text, part
        assert "next node    score" in text
        assert "succeeded" in text
        await move_to(pilot, screen, f"exam:default:{demo.ids['exams:daily']}")
        assert "experiment  ctr" in detail_text(screen)


async def test_s_starts_the_node(make_tui: TuiFactory, demo: Demo, live: LiveControl) -> None:
    before = (await api(live, lambda c: c.list_runs(node="prep", limit=1))).total
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await loaded(pilot)
        await move_to(pilot, screen, node_key(demo, "prep"))
        await pilot.press("s")
        await until(
            pilot, lambda: any("prep: started run" in m for m in notices(app)), what="the start notice"
        )
    page = await api(live, lambda c: c.list_runs(node="prep", limit=1))
    assert page.total == before + 1
    assert page.items[0].node_id == demo.ids["nodes:prep"]


async def test_s_on_an_exam_starts_the_exam(make_tui: TuiFactory, demo: Demo, live: LiveControl) -> None:
    before = (await api(live, lambda c: c.list_runs(node="prep", limit=1))).total
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await loaded(pilot)
        await move_to(pilot, screen, f"exam:default:{demo.ids['exams:daily']}")
        await pilot.press("s")
        await until(
            pilot, lambda: any("exam daily" in m for m in notices(app)), what="a notice about the exam"
        )
        assert any("runs queued" in m for m in notices(app)), notices(app)
    assert (await api(live, lambda c: c.list_runs(node="prep", limit=1))).total == before + 1


async def test_n_creates_an_experiment_then_an_exam(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await loaded(pilot)
        assert cursor_key(screen) == "space:default:default"
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the experiment form")
        await pilot.press(*"uplift")
        app.screen.query_one("#f-description", Input).value = "uplift modelling"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen, what="the form to close")
        await until(
            pilot, lambda: (cursor_key(screen) or "").startswith("experiment:"), what="the new experiment"
        )
        item = screen.selected()
        assert item is not None and item.name == "uplift"
        assert label(screen, item.key) == "uplift  0 exams · 0 nodes"

        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the exam form")
        form = app.screen
        assert form.query_one("#f-experimentId", Select).value == item.id  # the experiment it was opened on
        await pilot.press(*"weekly")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: (cursor_key(screen) or "").startswith("exam:"), what="the new exam")
        exam = screen.selected()
        assert exam is not None and exam.name == "weekly"
        assert label(screen, item.key) == "uplift  1 exam · 0 nodes"
    exams = await api(live, lambda c: c.list("default", "exams"))
    assert {"weekly": item.id} == {
        e["examName"]: e["experimentId"] for e in exams if e["examName"] == "weekly"
    }
    exp = await api(live, lambda c: c.get("default", "experiments", "uplift"))
    assert exp["description"] == "uplift modelling"


async def test_e_edits_an_experiment(make_tui: TuiFactory, demo: Demo, live: LiveControl) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await loaded(pilot)
        await move_to(pilot, screen, f"experiment:default:{demo.ids['experiments:ctr']}")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the form")
        field = app.screen.query_one("#f-description", Input)
        assert field.value == "click-through rate"
        field.value = "click-through rate, daily"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen, what="the form to close")
    exp = await api(live, lambda c: c.get("default", "experiments", "ctr"))
    assert exp["description"] == "click-through rate, daily"


async def test_f_marks_a_node_edit_finish(make_tui: TuiFactory, demo: Demo, live: LiveControl) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await loaded(pilot)
        key = node_key(demo, "adhoc")
        await move_to(pilot, screen, key)
        await pilot.press("f")
        await until(pilot, lambda: "✎" not in label(screen, key), what="adhoc to lose its ✎")
        assert cursor_key(screen) == key
    node = await api(live, lambda c: c.get("default", "nodes", "adhoc"))
    assert node["nodeStatus"] == "EDIT_FINISH"


async def test_f_on_a_node_without_relation_shows_why_not(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    bare = await api(live, lambda c: c.create("default", "nodes", {"nodeName": "bare"}))
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await loaded(pilot)
        await move_to(pilot, screen, f"node:default:{bare['id']}")
        await pilot.press("f")
        await until(
            pilot, lambda: any("has no relation" in m for m in notices(app)), what="control's refusal"
        )
    node = await api(live, lambda c: c.get("default", "nodes", "bare"))
    assert node["nodeStatus"] != "EDIT_FINISH"


async def test_x_stops_the_nodes_running_run(make_tui: TuiFactory, demo: Demo, live: LiveControl) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await loaded(pilot)
        await move_to(pilot, screen, node_key(demo, "adhoc"))
        await pilot.press("x")
        await until(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen", what="the confirm dialog")
        await pilot.press("y")
        await until(
            pilot, lambda: any("stop requested" in (n.title or "") for n in app._notifications), what="stop"
        )
        await move_to(pilot, screen, node_key(demo, "prep"))
        await pilot.press("x")
        await until(
            pilot, lambda: any("no run in progress" in m for m in notices(app)), what="nothing to stop"
        )
    run = await api(live, lambda c: c.get_run(demo.log_run))
    assert run.node_name == "adhoc"
    assert any("stopped from the dashboard" in t.reason for t in run.history) or run.state.value == "stopped"


async def test_l_opens_the_last_run_on_its_log(make_tui: TuiFactory, demo: Demo) -> None:
    run_detail = pytest.importorskip("tui.screens.run_detail")
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await loaded(pilot)
        await move_to(pilot, screen, node_key(demo, "adhoc"))
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, run_detail.RunDetailScreen), what="the run detail")
        shown: Any = app.screen
        assert shown.run_id == demo.log_run
        assert shown.initial_tab == "log"


async def test_enter_on_an_exam_opens_its_dag(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await loaded(pilot)
        await move_to(pilot, screen, f"exam:default:{demo.ids['exams:daily']}")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DagScreen), what="the DAG")
        dag: Any = app.screen
        assert dag.exam_id == demo.ids["exams:daily"]
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="back to the tree")


async def test_refresh_keeps_expansion_and_cursor(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await loaded(pilot)
        await move_to(pilot, screen, "group:default:(no exam)")
        await pilot.press("enter")  # collapse the group
        assert not screen._by_key["group:default:(no exam)"].is_expanded
        key = node_key(demo, "train")
        await move_to(pilot, screen, key)
        # a node added elsewhere appears on the next refresh; the cursor and the collapsed group stay
        await api(
            live,
            lambda c: c.create("default", "nodes", {"nodeName": "late", "examId": demo.ids["exams:daily"]}),
        )
        await until(
            pilot,
            lambda: label(screen, f"exam:default:{demo.ids['exams:daily']}").startswith("daily  4"),
            what="the new node",
        )
        assert cursor_key(screen) == key
        assert not screen._by_key["group:default:(no exam)"].is_expanded
        assert screen._by_key[f"exam:default:{demo.ids['exams:daily']}"].is_expanded


async def test_the_catalog_names_ids(live: LiveControl, demo: Demo) -> None:
    cat = await api(live, lambda c: Catalog.fetch(c, "default"))
    assert cat.name("operators", demo.ids["operators:ctr-train"]) == "ctr-train"
    assert cat.name("models", 999) == "#999"
    assert cat.name("models", None) == "-"
    assert [n["nodeName"] for n in cat.nodes_of(demo.ids["exams:daily"])] == ["prep", "train", "score"]


def _snap_before(demo: Demo) -> Any:
    async def run_before(pilot: Any) -> None:
        screen = await loaded(pilot)
        await move_to(pilot, screen, node_key(demo, "train"))
        await until(pilot, lambda: "#10" in detail_text(screen), what="the last run in the details")
        await settle(pilot)

    return run_before


def test_snapshot_small(snap_compare: Any, snap_tui: TuiFactory, demo: Demo) -> None:
    assert snap_compare(snap_tui(), terminal_size=SMALL, run_before=_snap_before(demo))


def test_snapshot_wide(snap_compare: Any, snap_tui: TuiFactory, demo: Demo) -> None:
    assert snap_compare(snap_tui(), terminal_size=WIDE, run_before=_snap_before(demo))


async def test_other_spaces_load_when_expanded_and_become_current(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    async def other_space(client: AsyncControlClient) -> None:
        await client.ensure_space("aaa-first")  # listed before default: the cursor still starts on default
        await client.create("aaa-first", "experiments", {"experimentName": "churn"})

    await api(live, other_space)
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await loaded(pilot)
        assert cursor_key(screen) == "space:default:default"
        assert app.space == "default"
        other = "space:aaa-first:aaa-first"
        assert label(screen, other) == "aaa-first"  # not loaded: no counts yet
        assert "aaa-first" not in screen._catalogs
        await move_to(pilot, screen, other)
        assert app.space == "aaa-first"  # selecting a space makes it current
        await pilot.press("enter")
        await until(pilot, lambda: "aaa-first" in screen._catalogs, what="the space to load")
        await until(
            pilot, lambda: label(screen, other).startswith("aaa-first  1 experiment · 0 nodes"), what="counts"
        )
        assert screen._by_key[other].is_expanded
