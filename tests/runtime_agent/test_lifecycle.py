"""The six-hook lifecycle through the real pipeline and FILE connector: order, batching, overrides."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from control.schemas import RunState
from runtime_agent.testing import AgentRunner
from tests.runtime_agent.operators import CamelCase, Explodes, InProcessTrainer, LeaksSecret, Recorder


def frame(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"x": range(start, start + n)})


async def test_hooks_run_in_order_per_batch() -> None:
    op = Recorder()
    result = await AgentRunner(
        op,
        sources={"source": frame(5), "test_source": frame(2, 100)},
        runtime_type="PYTHON",
        operator_read_num=2,
    ).arun()
    assert result.ok, result.reason
    per_batch = lambda src, n: [  # noqa: E731
        ("data_execute_before", src, n),
        ("operate_execute", src, n),
        ("data_execute_after", src, n),
    ]
    assert op.calls == [
        ("task_init_execute", None, None),
        ("operate_execute_before", "source-0", None),
        *per_batch("source-0", 2),
        *per_batch("source-0", 2),
        *per_batch("source-0", 1),
        ("operate_execute_after", "source-0", None),
        ("operate_execute_before", "test_source-0", None),
        *per_batch("test_source-0", 2),
        ("operate_execute_after", "test_source-0", None),
        ("task_finish_execute", None, None),
    ]
    # emitted rows went to the FILE sink, in order, tagged with their role
    assert result.sink is not None
    assert result.sink["x"].tolist() == [0, 1, 2, 3, 4, 100, 101]
    assert result.sink["seen_by"].tolist() == ["source"] * 5 + ["test_source"] * 2
    assert result.emitted["x"].tolist() == result.sink["x"].tolist()
    # the non-numeric metric was dropped, the numeric one reported
    assert result.metrics == [(1, {"batches": 4.0})]
    assert [s for s, _ in result.states] == [RunState.RUNNING]
    assert result.finishes and result.finishes[0].run_parameter == {"runId": "1"}


async def test_disposable_source_is_one_batch() -> None:
    op = Recorder()
    result = await AgentRunner(
        op,
        sources={"source": frame(7)},
        runtime_type="PYTHON",
        operator_read_num=2,
        paginate_read_num=3,
        disposable=True,
    ).arun()
    assert result.ok, result.reason
    assert [c for c in op.calls if c[0] == "operate_execute"] == [("operate_execute", "source-0", 7)]


async def test_sources_follow_order_and_source_fields_name_methods(caplog: pytest.LogCaptureFixture) -> None:
    op = Recorder()
    runner = AgentRunner(
        op,
        sources={"test_source": frame(4, 10), "source": frame(4)},
        runtime_type="PYTHON",
        hooks={
            "dataExecuteBefore": "drop_odd",
            "taskInitExecute": "specialInit",
            "dataExecuteAfter": "string",
        },
    )
    spec = runner.build_spec()
    by_name = {s.source_name: s for s in spec.sources}
    by_name["test_source-0"].order, by_name["source-0"].order = 2, 1
    with caplog.at_level(logging.WARNING):
        outcome = await _run_spec(runner, spec, op)
    assert outcome.state == RunState.SUCCEEDED, outcome.reason
    names = [c[0] for c in op.calls]
    assert names[0] == "special_init" and "task_init_execute" not in names  # the field replaced the default
    assert [c for c in op.calls if c[0] == "operate_execute"] == [
        ("operate_execute", "source-0", 2),
        ("operate_execute", "test_source-0", 2),
    ]
    assert names.count("drop_odd") == 2 and names.count("data_execute_after") == 2  # "string": default kept
    warnings = [r.getMessage() for r in caplog.records if "names no method" in r.getMessage()]
    assert len(warnings) == 2 and all("'string'" in w for w in warnings)  # once per source


async def _run_spec(runner: AgentRunner, spec, op):  # type: ignore[no-untyped-def]
    from runtime_agent.callbacks import RecordingCallbacks
    from runtime_agent.runner import run_task
    from runtime_agent.settings import AgentSettings

    w = runner.workdir
    settings = AgentSettings(
        data_dir=w / "data",
        model_dir=w / "model",
        log_dir=w / "logs",
        summary_dir=w / "summary",
        share_dir=w / "share",
    )
    return await run_task(settings, RecordingCallbacks(), spec=spec, operator=op)


async def test_camel_case_hooks() -> None:
    op = CamelCase()
    result = await AgentRunner(op, sources={"source": frame(3)}, runtime_type="PYTHON").arun()
    assert result.ok, result.reason
    assert op.calls == ["taskInitExecute", "operateExecute:3"]


async def test_user_error_fails_with_type_and_message() -> None:
    result = await AgentRunner(Explodes, sources={"source": frame(3)}, runtime_type="PYTHON").arun()
    assert result.state == RunState.FAILED and result.exit_code == 1
    assert result.reason == (
        "failed in stage read source 'source-0' after 3 rows: "
        "operator failed in operate_execute: ValueError: column 'x' has negative values"
    )
    assert result.states[-1] == (RunState.FAILED, result.reason)
    assert not result.finishes


async def test_reason_never_contains_a_password() -> None:
    runner = AgentRunner(
        LeaksSecret, sources={"source": frame(1)}, operator_conf={"password": "hunter2-secret"}
    )
    spec = runner.build_spec()
    spec.sources[0].connection.connect_password = "hunter2-secret"
    outcome = await _run_spec(runner, spec, LeaksSecret)
    assert outcome.state == RunState.FAILED
    assert "hunter2-secret" not in outcome.reason and "***" in outcome.reason


async def test_in_process_training_saves_and_registers_the_model(tmp_path: Path) -> None:
    result = await AgentRunner(
        InProcessTrainer, sources={"source": frame(4)}, model_conf={"scoreMetric": "score"}, workdir=tmp_path
    ).arun()
    assert result.ok, result.reason
    assert (result.model_dir / "mean.txt").read_text() == "1.5"
    assert result.model_address is not None and result.model_address.endswith("model/run-1/model.tar.gz")
    assert (tmp_path / "models" / "model" / "run-1" / "model.tar.gz").is_file()
    [version] = result.model_versions
    assert version.model_score == 0.75 and version.metrics == {"score": 0.75, "loss": 0.1}


async def test_stop_from_heartbeat_reports_stopped(tmp_path: Path) -> None:
    release = tmp_path / "never"
    from tests.runtime_agent.operators import WaitForFile

    result = await AgentRunner(
        WaitForFile,
        sources={"source": frame(1)},
        operator_conf={"releaseFile": str(release)},
        stop_after_heartbeats=1,
        heartbeat_interval=0.01,
    ).arun()
    assert result.state == RunState.STOPPED and result.exit_code == 143
    assert result.states[-1] == (RunState.STOPPED, "stopped by user")
    assert not result.finishes
    release.touch()  # let the abandoned hook thread end
