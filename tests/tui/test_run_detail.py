"""Run detail against a live control: the demo's `log_run` in every tab (spec, history, log, metrics),
log search, paging a 200,000-line log back to line 1, following a growing log; snapshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from control.client import AsyncControlClient
from control.settings import Settings
from control.store import models as m
from control.store.engine import Store
from tests.e2e.conftest import LiveControl
from tests.tui.conftest import SMALL, WIDE, TuiFactory, screen_text, settle, until
from tests.tui.seed import NOW, Demo
from tui.app import AtomApp
from tui.screens.run_detail import RunDetailScreen
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.logview import LogView, RunLog
from tui.widgets.plot import MetricPlot


def detail(app: AtomApp) -> RunDetailScreen:
    screen = app.screen
    assert isinstance(screen, RunDetailScreen)
    return screen


def ready(app: AtomApp) -> bool:
    screen = app.screen
    return isinstance(screen, RunDetailScreen) and screen.run is not None


def log_lines(app: AtomApp) -> list[str]:
    buffer = app.screen.query_one(LogView).buffer
    return buffer.lines[: buffer.line_count]


def visible_log(app: AtomApp) -> list[str]:
    view = app.screen.query_one(LogView)
    top = view.scroll_offset.y
    return view.buffer.lines[top : top + view.size.height]


def log_status(app: AtomApp) -> str:
    return str(app.screen.query_one("#log-status").render())


def write_log(settings: Settings, run_id: int, lines: int) -> Path:
    """A log of `lines` numbered lines for run `run_id` (what an agent would have written)."""
    path = settings.home / "runs" / str(run_id) / "agent.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"line {i:06d}\n" for i in range(1, lines + 1)))
    store = Store(settings.database_url)
    try:
        with store.transaction() as ses:
            run = ses.get(m.Runtime, run_id)
            assert run is not None
            run.log_path = str(path)
    finally:
        store.dispose()
    return path


async def open_detail(pilot: Any, app: AtomApp, run_id: int, tab: str = "summary") -> None:
    if tab == "summary":
        app.open_run(run_id)
    else:
        app.push_screen(RunDetailScreen(run_id, tab=tab))
    await until(pilot, lambda: ready(app), what=f"run #{run_id} to load")


async def test_summary_shows_the_spec_without_passwords(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        await open_detail(pilot, app, demo.log_run)
        await until(pilot, lambda: detail(app).spec is not None, what="the spec")
        await settle(pilot)
        text = screen_text(app)
        head = text.split("Summary")[0]
        assert f"#{demo.log_run}" in head and "adhoc" in head and "running" in head
        assert "42%" in head and "stage train" in head
        for expected in (
            "ctr-train (TRAIN)",
            "runtime_agent.examples.train_example:TrainExample",
            "epoch 3",
            "deploy TOUCH_DEPLOY",
            "clicks",
            "holdout",
            "test_source",
            "lake (FILE)",
            "train.csv",
            "read / total",
            "sinks",
            "model",
        ):
            assert expected in text, expected
        assert "s3cret" not in text


async def test_history_tab_lists_transitions_with_reasons(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        await open_detail(pilot, app, demo.log_run)
        await pilot.press("h")
        async with AsyncControlClient(live.url) as client:
            run = await client.get_run(demo.log_run)
        table = app.screen.query_one("#history-table")
        await until(pilot, lambda: table.row_count == len(run.history) > 0, what="the history rows")  # type: ignore[attr-defined]
        assert app.focused is table
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]  # type: ignore[attr-defined]
        assert [r[3] for r in rows] == [t.reason for t in run.history]
        assert rows[-1][2] == "▶ running" and "agent up" in rows[-1][3]


async def test_log_tail_search_and_follow(make_tui: TuiFactory, demo: Demo, live: LiveControl) -> None:
    app = make_tui(refresh=0.2)
    async with app.run_test(size=WIDE) as pilot:
        await open_detail(pilot, app, demo.log_run)
        await pilot.press("l")
        await until(pilot, lambda: len(log_lines(app)) == 60, what="the demo's 60 log lines")
        assert app.focused is app.screen.query_one(LogView)
        await until(pilot, lambda: "batch 59 " in visible_log(app)[-1] if visible_log(app) else False)
        # search: `/`, type, Enter jumps to the match and highlights it
        await pilot.press("slash", *"batch 42 ", "enter")
        view = app.screen.query_one(LogView)
        await until(pilot, lambda: view.current is not None, what="a match")
        assert view.current is not None and "batch 42 " in log_lines(app)[view.current]
        assert log_lines(app)[view.current] in visible_log(app)
        assert "match on line 43" in log_status(app)
        await pilot.press("escape")
        assert app.focused is view
        # follow: lines the agent appends show up at the bottom
        await pilot.press("G")
        with (live.settings.home / "runs" / str(demo.log_run) / "agent.log").open("a") as fh:
            fh.write("2026-11-20 09:01:00 INFO runtime_agent: appended while watching\n")
        await until(
            pilot,
            lambda: bool(visible_log(app)) and "appended while watching" in visible_log(app)[-1],
            what="the appended line at the bottom",
        )
        assert len(log_lines(app)) == 61
        assert "following" in log_status(app)


async def test_log_pages_back_to_line_one_without_losing_lines(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    total = 200_000
    run_id = demo.runs[0]
    write_log(live.settings, run_id, total)
    app = make_tui(log_page=64 * 1024, live=False)
    async with app.run_test(size=SMALL) as pilot:
        await open_detail(pilot, app, run_id, tab="log")
        await until(pilot, lambda: len(log_lines(app)) > 0, what="the log's tail")
        runlog = app.screen.query_one(RunLog)
        assert not runlog.buffer.at_start, "only the tail is loaded first"
        assert log_lines(app)[-1] == f"line {total:06d}"
        assert len(log_lines(app)) < total
        await until(pilot, lambda: visible_log(app)[-1] == f"line {total:06d}", what="the tail in view")
        await pilot.press("home")
        await until(pilot, lambda: runlog.buffer.at_start, timeout=60, what="line 1 to load")
        lines = log_lines(app)
        assert len(lines) == total
        assert lines == [f"line {i:06d}" for i in range(1, total + 1)]
        await until(pilot, lambda: visible_log(app)[0] == "line 000001", what="line 1 in view")
        assert "from line 1" in log_status(app)
        # searching back from the end finds a line near the top again
        await pilot.press("G", "slash", *"line 000003", "enter")
        await until(pilot, lambda: "line 000003" in visible_log(app), what="the match in view")


async def test_run_with_no_log_yet(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        await open_detail(pilot, app, demo.runs[6], tab="log")  # a queued run
        await until(pilot, lambda: "no log yet" in log_status(app), what="the no-log notice")
        assert log_lines(app) == []


async def test_metrics_tab_plots_each_metric(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        await open_detail(pilot, app, demo.log_run)
        await pilot.press("m")
        await until(pilot, lambda: len(app.screen.query(MetricPlot)) == 2, what="two plots")
        plots = {p.metric: p for p in app.screen.query(MetricPlot)}
        assert set(plots) == {"loss", "accuracy"}
        assert len(plots["loss"].points) == 30
        await settle(pilot)
        text = screen_text(app)
        assert "loss  last 0.1455 @ step 29" in text
        assert "accuracy  last 0.935 @ step 29" in text
        assert sum(1 for ch in text if 0x2801 <= ord(ch) <= 0x28FF) > 50, "the curves are drawn in braille"
        # at 200 columns the plots sit side by side
        assert plots["loss"].region.y == plots["accuracy"].region.y


async def test_metrics_update_while_the_run_reports(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    app = make_tui(refresh=0.2)
    async with app.run_test(size=SMALL) as pilot:
        await open_detail(pilot, app, demo.log_run, tab="metrics")
        await until(pilot, lambda: len(app.screen.query(MetricPlot)) == 2, what="two plots")
        store = Store(live.settings.database_url)
        try:
            with store.transaction() as ses:
                ses.add(m.RunMetric(runtime_id=demo.log_run, step=30, name="loss", value=0.125, at=NOW))
                ses.add(m.RunMetric(runtime_id=demo.log_run, step=0, name="f1", value=0.5, at=NOW))
        finally:
            store.dispose()
        await until(pilot, lambda: len(app.screen.query(MetricPlot)) == 3, what="a plot for the new metric")
        loss = next(p for p in app.screen.query(MetricPlot) if p.metric == "loss")
        await until(pilot, lambda: "last 0.125 @ step 30" in loss.render().plain, what="the new loss point")


async def test_x_stops_the_run_from_its_detail(make_tui: TuiFactory, demo: Demo, live: LiveControl) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        await open_detail(pilot, app, demo.log_run)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirm dialog")
        await pilot.press("y")
        await until(pilot, lambda: ready(app) and detail(app).run.state.value == "stopped")  # type: ignore[union-attr]
        async with AsyncControlClient(live.url) as client:
            assert (await client.get_run(demo.log_run)).state.value == "stopped"
        await until(pilot, lambda: "stopped" in str(app.screen.query_one("#run-head").render()))


async def test_s_starts_the_node_again_or_says_why_not(make_tui: TuiFactory, demo: Demo) -> None:
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        await open_detail(pilot, app, demo.log_run)  # node adhoc: not EDIT_FINISH
        await pilot.press("s")
        await until(
            pilot,
            lambda: any(
                "starting adhoc" in str(n.message) and "EDIT_FINISH" in str(n.message)
                for n in app._notifications
            ),
            what="why adhoc cannot start",
        )
        assert isinstance(app.screen, RunDetailScreen)


def _on_tab(tab: str) -> Any:
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        app.push_screen(RunDetailScreen(12, tab=tab))
        await until(pilot, lambda: ready(app) and detail(app).spec is not None, what="the run")
        if tab == "metrics":
            await until(pilot, lambda: len(app.screen.query(MetricPlot)) == 2, what="the plots")
        await settle(pilot)

    return run_before


def test_snapshot_summary_small(snap_compare: Any, snap_tui: TuiFactory, demo: Demo) -> None:
    assert demo.log_run == 12
    assert snap_compare(snap_tui(), terminal_size=SMALL, run_before=_on_tab("summary"))


def test_snapshot_summary_wide(snap_compare: Any, snap_tui: TuiFactory) -> None:
    assert snap_compare(snap_tui(), terminal_size=WIDE, run_before=_on_tab("summary"))


def test_snapshot_metrics_small(snap_compare: Any, snap_tui: TuiFactory) -> None:
    assert snap_compare(snap_tui(), terminal_size=SMALL, run_before=_on_tab("metrics"))


def test_snapshot_metrics_wide(snap_compare: Any, snap_tui: TuiFactory) -> None:
    assert snap_compare(snap_tui(), terminal_size=WIDE, run_before=_on_tab("metrics"))
