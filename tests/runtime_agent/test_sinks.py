"""Sink writes through the agent: staged while the run works, committed at its end, keyed by run."""

from __future__ import annotations

import pandas as pd

from connectors.base import RUN_COLUMN
from control.schemas import RunState
from runtime_agent.pipeline import run_key
from runtime_agent.testing import AgentRunner
from tests.runtime_agent.operators import Emits, EmitsThenFails, ReadsFiles


def frame(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"x": range(start, start + n)})


async def test_a_failed_run_leaves_the_sink_as_it_was(tmp_path) -> None:
    runner = AgentRunner(
        EmitsThenFails(),
        sources={"source": frame(50)},
        runtime_type="PYTHON",
        operator_read_num=10,
        workdir=tmp_path,
    )
    (tmp_path / "outputs").mkdir()
    before = pd.DataFrame({"x": [-1], RUN_COLUMN: ["earlier"]})
    before.to_pickle(tmp_path / "outputs" / "sink.pkl")
    result = await runner.arun()
    assert result.state == RunState.FAILED and "failed after emitting" in result.reason
    assert len(result.emitted) == 50  # the rows were emitted (and staged) ...
    pd.testing.assert_frame_equal(
        pd.read_pickle(tmp_path / "outputs" / "sink.pkl"), before
    )  # ... never committed


async def test_a_retried_run_replaces_its_own_rows(tmp_path) -> None:
    def runner() -> AgentRunner:
        return AgentRunner(Emits(), sources={"source": frame(30)}, runtime_type="PYTHON", workdir=tmp_path)

    first = await runner().arun()
    assert first.ok, first.reason
    again = await runner().arun()  # the same run (same run id) executed again, e.g. a restarted pod
    assert again.ok, again.reason
    sink = again.sink
    assert sink is not None
    assert sink["x"].tolist() == list(range(30))  # once, not twice
    assert set(sink[RUN_COLUMN]) == {run_key(runner().build_spec())}


async def test_operators_can_work_on_local_files(tmp_path) -> None:
    result = await AgentRunner(
        ReadsFiles(), sources={"source": [frame(5), frame(7)]}, runtime_type="PYTHON", workdir=tmp_path
    ).arun()
    assert result.ok, result.reason
    assert result.emitted["name"].tolist() == ["source-0.pkl", "source-1.pkl"]
    assert all(result.emitted["size"] > 0)
