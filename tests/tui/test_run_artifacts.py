"""Run detail's Artifacts tab against a live control: a run's outputs, and `v` on its model version
opening the Models screen on that model."""

from __future__ import annotations

from control.pipeline import artifacts
from control.schemas.pipeline import ArtifactKind
from control.settings import Settings
from control.store.engine import Store
from tests.e2e.conftest import LiveControl
from tests.tui.conftest import WIDE, TuiFactory, screen_text, until
from tests.tui.seed import Demo
from tests.tui.test_run_detail import open_detail
from tui.screens.models import ModelsScreen
from tui.widgets.artifacts import ArtifactsTable


def leave_outputs(settings: Settings, run_id: int) -> None:
    store = Store(settings.database_url)
    try:
        with store.transaction() as ses:
            value = {"modelName": "ctr", "version": "2", "score": 0.912, "operatorResult": "CONTAIN_OPTIMAL"}
            artifacts.put(
                ses, run_id, "model", ArtifactKind.MODEL, uri="file://models/ctr/v2.tar.gz", value=value
            )
            artifacts.put(ses, run_id, "metrics", ArtifactKind.METRICS, value={"auc": 0.912})
            sink = {"connection": "lake", "target": "scores", "rows": 42, "format": "parquet"}
            artifacts.put(ses, run_id, "sink:scores", ArtifactKind.DATASET, value=sink)
    finally:
        store.dispose()


async def test_artifacts_tab_and_model_link(make_tui: TuiFactory, demo: Demo, live: LiveControl) -> None:
    leave_outputs(live.settings, demo.log_run)
    app = make_tui()
    async with app.run_test(size=WIDE) as pilot:
        await open_detail(pilot, app, demo.log_run)
        await pilot.press("a")
        table = app.screen.query_one(ArtifactsTable)
        await until(pilot, lambda: table.row_count == 3, what="three artifacts")
        text = screen_text(app)
        assert "ctr v2  score 0.912  best so far" in text
        assert "42 rows to scores (lake)" in text and "auc=0.912" in text
        assert table.model_name() == "ctr"  # the first row: the model version
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, ModelsScreen), what="the Models screen")
        await until(
            pilot, lambda: "ctr" in screen_text(app) and "versions of ctr" in screen_text(app), what="ctr"
        )
