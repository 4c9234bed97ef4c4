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
        return AgentRunner(
            Emits(),
            sources={"source": frame(30)},
            runtime_type="PYTHON",
            workdir=tmp_path,
            sink_conf={"idempotent": True},  # files are run-keyed on request (tables by default)
        )

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


def test_sink_write_options_defaults() -> None:
    from control.schemas import ConnectionSpec, SourceSpec
    from runtime_agent.sources import write_options

    def sink(kind: str, target: str, **conf: object) -> SourceSpec:
        return SourceSpec.model_validate(
            {
                "sourceName": "out",
                "sourceType": "sink",
                "operateExecute": target,
                "sourceConf": conf,
                "connection": ConnectionSpec(connect_name="c", connect_type=kind),
            }
        )

    assert write_options(sink("MYSQL", "scores"), "n#1").run_key == "n#1"  # tables: keyed by default
    assert write_options(sink("S3", "out/"), "n#1").run_key == "n#1"  # datasets too
    plain = write_options(sink("FILE", "out.csv"), "n#1")  # a single file: keyed in a hidden index
    assert (plain.run_key, plain.run_index) == ("n#1", True)
    assert write_options(sink("S3", "out.csv"), "n#1").run_key is None  # a single object on request
    keyed = write_options(sink("FILE", "out.csv", idempotent=True), "n#1")  # the `_atom_run` column
    assert (keyed.run_key, keyed.run_index) == ("n#1", False)
    assert write_options(sink("MYSQL", "scores", idempotent=False), "n#1").run_key is None
    assert write_options(sink("MYSQL", "scores", runKey="2026-11-22"), "n#1").run_key == "2026-11-22"
    upsert = write_options(sink("MYSQL", "scores", writeMode="upsert", key=["id"]), "n#1")
    assert (upsert.mode, upsert.key, upsert.run_key) == ("upsert", ("id",), None)
