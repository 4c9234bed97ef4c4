"""The DAG view with several edges per node: fan-out and fan-in drawn from nextNodeIds, a skipped node
marked (dashed box, its skip reason in place of its kind), and `R` resuming the exam's latest
failed exam run; the widget alone in a Pilot app, and the DAG screen against a real control."""

from __future__ import annotations

import re
from typing import Any

from textual.app import App, ComposeResult

from control import launch
from control.client import AsyncControlClient
from control.schemas import NodeRelationIn, TaskEvent
from control.store import models as m
from control.store.engine import Store
from tests.e2e.conftest import LiveControl
from tests.tui.conftest import SMALL, WIDE, TuiFactory, until
from tests.tui.seed import Demo
from tests.tui.test_dag import open_dag
from tui.format import STATE_STYLES
from tui.widgets.dag import DagBox, DagView

SKIP = "upstream train failed (trigger rule all_success)"


class OneDag(App[None]):
    def compose(self) -> ComposeResult:
        yield DagView(id="dag")


async def test_fan_out_fan_in_and_a_skipped_node() -> None:
    boxes = [
        DagBox(1, "prep", "PYTHON_DATA", "succeeded"),
        DagBox(2, "train", "TRAIN", "failed"),
        DagBox(3, "features", "FEATURES", "succeeded"),
        DagBox(4, "evaluate", "REASONING", "skipped", reason=SKIP),
    ]
    edges = [(1, 2), (1, 3), (2, 4), (3, 4)]
    app = OneDag()
    async with app.run_test(size=WIDE) as pilot:
        view = app.query_one(DagView)
        view.set_graph(boxes, edges)
        await pilot.pause()
        assert view.graph.layers[0] == [1] and sorted(view.graph.layers[1]) == [2, 3]
        assert view.graph.layers[2] == [4]
        assert sorted(view.graph.edges) == edges  # every edge of the fork and of the join is drawn
        text = view.drawing.text.plain
        lines = text.splitlines()
        assert sum(line.count("▶") for line in lines) == 3  # one head per target: the join's edges merge
        join, fork = view.drawing.boxes[4], view.drawing.boxes[1]
        assert re.search(r"├─+▶┆", lines[join.y + 2])  # fan-in: two lanes meet, one arrow into the join
        assert re.search(r"[┣├]─+┤", lines[fork.y + 2])  # fan-out: one line splits up and down
        assert "↷ skipped" in text and "upstream train failed" in text
        assert "REASONING" not in text  # the skipped node shows its reason in place of its kind
        region = view.drawing.boxes[4]
        top = lines[region.y][region.x : region.x + region.width]
        assert top.startswith("┌┄") and lines[region.y + 1][region.x] == "┆"  # dashed: skipped
        ok_box = view.drawing.boxes[3]
        assert lines[ok_box.y][ok_box.x : ok_box.x + 2] == "┌─"
        styles = {str(span.style) for span in view.drawing.text.spans}
        assert STATE_STYLES["skipped"] in styles


def _exam_run(live: LiveControl, demo: Demo, state: str) -> int:
    """An exam run of exam daily: prep succeeded, train failed, score skipped (newest runs of the nodes)."""
    store = Store(live.settings.database_url)
    try:
        with store.transaction() as ses:
            exam_id = demo.ids["exams:daily"]
            space_id = ses.get(m.Exam, exam_id).space_id  # type: ignore[union-attr]
            er = m.ExamRun(space_id=space_id, exam_id=exam_id, exam_name="daily", state=state, reason=state)
            ses.add(er)
            ses.flush()
            made: dict[str, m.Runtime] = {}
            for name, run_state, reason in (
                ("prep", "succeeded", "runningAutoFinish"),
                ("train", "failed", "boom"),
                ("score", "skipped", SKIP),
            ):
                node = ses.get(m.Node, demo.ids[f"nodes:{name}"])
                assert node is not None
                ups = [made[u].id for u in {"train": ["prep"], "score": ["train"]}.get(name, [])]
                run = m.Runtime(
                    space_id=space_id,
                    node_id=node.id,
                    node_name=name,
                    operator_runtime_type=node.operator_runtime_type,
                    adapter="local",  # a resumed run waits for the space's quota (set below)
                    state=run_state,
                    reason=reason,
                    token_hash="x" * 64,
                    spec={},
                    exam_id=exam_id,
                    exam_run_id=er.id,
                )
                ses.add(run)
                ses.flush()
                spec = launch.build_task_spec(session=ses, node=node, event=TaskEvent(task_id=node.id))
                launch.finish_runtime(session=ses, run=run, spec=spec, upstream_run_ids=ups)
                made[name] = run
            return er.id
    finally:
        store.dispose()


async def test_the_screen_marks_skips_and_resumes(
    make_tui: TuiFactory, demo: Demo, live: LiveControl
) -> None:
    async with AsyncControlClient(live.url) as client:  # prep forks to train and score; train joins score
        for name, nexts in (("prep", ["train", "score"]), ("train", ["score"])):
            node = await client.get("default", "nodes", name)
            rel = node["relation"]
            await client.create_node_relation(
                NodeRelationIn(
                    node_id=node["id"],
                    operator_id=rel["operatorId"],
                    data_source_ids=rel["dataSourceIds"],
                    model_id=rel["modelId"],
                    service_info_id=rel["serviceInfoId"],
                    next_node_ids=[demo.ids[f"nodes:{n}"] for n in nexts],
                )
            )
    er_id = _exam_run(live, demo, "failed")
    async with AsyncControlClient(live.url) as client:  # resumed runs wait for it: none starts here
        await client.request("PUT", "/api/v1/spaces/default/quota", json={"cpu": 0.01})
    app = make_tui()
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_dag(pilot, demo)
        ids = demo.ids
        await until(pilot, lambda: screen.exam_run is not None, what="the exam run")
        view = screen.dag
        assert (ids["nodes:prep"], ids["nodes:score"]) in view.graph.edges or any(
            u < 0 for u, _ in view.graph.edges
        )  # the long edge prep -> score passes through a point
        assert sum(1 for u, v in view.graph.edges if v == ids["nodes:score"]) == 2  # fan-in at score
        score = next(b for b in view.boxes if b.name == "score")
        assert (score.state, score.reason) == ("skipped", SKIP)
        assert "↷ skipped" in view.drawing.text.plain
        await pilot.press("R")
        await until(
            pilot, lambda: screen.exam_run is not None and screen.exam_run.resumes == 1, what="resume"
        )
        assert screen.exam_run is not None
        runs: dict[str, Any] = {r.node_name: r for r in screen.exam_run.runs}
        assert screen.exam_run.id == er_id and screen.exam_run.state.value == "running"
        assert runs["prep"].state.value == "succeeded" and runs["prep"].attempt == 1
        assert runs["train"].attempt == 2 and runs["score"].attempt == 2
        assert runs["score"].reason == f"resume of exam run {er_id}: waiting for train"
        await pilot.press("R")  # a running exam run does not resume
        await until(
            pilot,
            lambda: any("only a failed or stopped one resumes" in n.message for n in app._notifications),
            what="the refusal",
        )
