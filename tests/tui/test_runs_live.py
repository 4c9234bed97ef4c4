"""A real run, watched live: `s` on a run of node `prep` starts it again (a real agent process runs
tests.e2e.operators:CopyRows over the demo's CSV), and its row goes from queued to succeeded while
the Runs screen is open. The run waits for a release file until the screen has shown it unfinished,
so a loaded machine cannot turn it into a run that was already over when first drawn."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.client import AsyncControlClient
from tests.e2e.conftest import LiveControl
from tests.tui.conftest import WIDE, TuiFactory, until
from tests.tui.seed import Demo
from tests.tui.test_runs import open_runs, table

pytestmark = pytest.mark.e2e


async def test_a_run_goes_from_queued_to_succeeded_on_screen(
    make_tui: TuiFactory, demo: Demo, live: LiveControl, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    async with AsyncControlClient(live.url) as client:
        await client.patch(
            "default",
            "operators",
            "ctr-prep",
            {"operatorConf": {"releaseFile": str(release)}},
        )
    app = make_tui(refresh=0.2)
    async with app.run_test(size=WIDE) as pilot:
        await open_runs(pilot, app, 12)
        async with AsyncControlClient(live.url) as client:
            prep_runs = (await client.list_runs(space="default", q="node:prep")).items
        assert prep_runs and prep_runs[0].node_id == demo.ids["nodes:prep"]
        table(app).move_cursor(row=table(app).get_row_index(str(prep_runs[0].id)))
        await pilot.press("s")  # start prep again
        await pilot.press("f")  # and follow the newest run
        await until(pilot, lambda: table(app).row_count == 13, what="the new run's row")
        new = max(run.id for run in table(app).runs)
        await until(
            pilot, lambda: table(app).current_id == new, what="follow to put the cursor on the new run"
        )

        seen: list[str] = []

        def state_cell() -> str:
            state = str(table(app).get_cell(str(new), "state")).split()[-1]
            if not seen or seen[-1] != state:
                seen.append(state)
            return state

        await until(
            pilot, lambda: state_cell() in ("queued", "pending", "running"), what="the run shown unfinished"
        )
        release.touch()
        await until(
            pilot,
            lambda: state_cell() in ("succeeded", "failed", "stopped"),
            timeout=90,
            what="the run to finish",
        )
        async with AsyncControlClient(live.url) as client:
            run = await client.get_run(new)
            log = (await client.run_logs(new, limit=1 << 20)).text
        assert f"waiting for {release}" in log  # the run really waited for the screen
        assert run.state.value == "succeeded", (run.reason, seen)
        assert seen[-1] == "succeeded"
        assert set(seen[:-1]) & {"queued", "pending", "running"}, seen
        assert seen.index("succeeded") == len(seen) - 1
        assert str(table(app).get_cell(str(new), "progress")).endswith("100%") or run.progress is None
