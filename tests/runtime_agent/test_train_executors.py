"""Executor choice, worker plans and Ray settings from a run's resources (no Ray cluster needed)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from control.schemas.runs import ServiceInfoSpec
from runtime_agent.errors import SpecError
from runtime_agent.testing import AgentRunner
from runtime_agent.timings import StageTimings, parse_line
from runtime_agent.train import plan_for, resolve_executor
from runtime_agent.train_ray import (
    CLEANER_LOGGER,
    STATE_API_WARNING,
    StateApiUnavailable,
    quiet_placement_group_cleaner,
    scaling_config,
    torch_backend,
    worker_env,
)
from tests.runtime_agent.conftest import tabular


def test_auto_is_direct_for_one_worker_and_ray_for_more() -> None:
    one = plan_for(ServiceInfoSpec(si_cpu=2))
    two = plan_for(ServiceInfoSpec(si_cpu=1, si_node_num=2))
    assert (one.workers, two.workers) == (1, 2)
    assert resolve_executor(None, {}, "auto", one) == "direct"
    assert resolve_executor(None, {}, "auto", two) == "ray"
    assert resolve_executor(None, {}, None, two) == "ray"
    # environmentConf beats the agent's setting; an explicit request (the CLI flag) beats both
    assert resolve_executor(None, {"trainExecutor": "ray"}, "direct", one) == "ray"
    assert resolve_executor("local", {"trainExecutor": "ray"}, "auto", two) == "direct"
    assert resolve_executor(None, {"trainExecutor": "Direct"}, "auto", two) == "direct"


def test_an_unknown_executor_is_one_clear_line() -> None:
    with pytest.raises(SpecError) as caught:
        resolve_executor(None, {"trainExecutor": "spark"}, "auto", plan_for(ServiceInfoSpec()))
    assert str(caught.value) == (
        "train executor 'spark' is not one of auto, direct, ray (local = direct): "
        "fix environmentConf.trainExecutor or ATOM_TRAIN_EXECUTOR"
    )


def test_gpu_plan_is_one_nccl_worker_per_gpu() -> None:
    plan = plan_for(ServiceInfoSpec(si_cpu=8, si_gpu=4, si_memory=8192))
    assert (plan.workers, plan.use_gpu, plan.cpus_per_worker) == (4, True, 2.0)
    assert torch_backend(plan) == "nccl"
    config = scaling_config(plan)
    assert (config.num_workers, config.use_gpu) == (4, True)
    assert config.resources_per_worker == {"CPU": 2.0, "GPU": 1.0, "memory": 2048 * 1024 * 1024}

    cpu = plan_for(ServiceInfoSpec(si_cpu=1, si_node_num=2, si_memory=0))
    assert torch_backend(cpu) == "gloo"
    config = scaling_config(cpu)
    assert (config.num_workers, config.use_gpu, config.resources_per_worker) == (2, False, {"CPU": 1.0})


def test_workers_get_pythonpath_and_run_env_but_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/code/abc:/repo")
    monkeypatch.setenv("ATOM_RUN_ID", "7")
    monkeypatch.setenv("ATOM_RUN_TOKEN", "s3cret")
    monkeypatch.setenv("ATOM_SERVICE_TOKEN", "s3cret")
    monkeypatch.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "1")
    env = worker_env({"MY_FLAG": "1"})
    assert env["PYTHONPATH"] == "/code/abc:/repo" and env["ATOM_RUN_ID"] == "7" and env["MY_FLAG"] == "1"
    assert "ATOM_RUN_TOKEN" not in env and "ATOM_SERVICE_TOKEN" not in env
    assert env["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] == "1"  # Ray Train's knobs reach its controller
    monkeypatch.delenv("PYTHONPATH")
    assert "PYTHONPATH" not in worker_env()


def test_state_api_filter_drops_only_that_warning() -> None:
    cleaner = logging.getLogger(CLEANER_LOGGER)
    before = list(cleaner.filters)
    try:
        quiet_placement_group_cleaner()
        quiet_placement_group_cleaner()  # idempotent: a worker may run the hook again
        assert sum(isinstance(f, StateApiUnavailable) for f in cleaner.filters) == 1

        def record(msg: str) -> logging.LogRecord:
            return logging.LogRecord(CLEANER_LOGGER, logging.WARNING, __file__, 1, msg, None, None)

        noise = record(
            f"{STATE_API_WARNING}. State API may be temporarily unavailable. Continuing to monitor."
        )
        other = record("Failed to clean up placement group: boom")
        assert cleaner.filter(noise) is False
        assert cleaner.filter(other) is True
    finally:
        cleaner.filters[:] = before


def test_timings_line_round_trips() -> None:
    timings = StageTimings()
    timings.add("train", 1.5)
    timings.add("ray_connect", 0.25)
    timings.add("train", 0.5)
    line = timings.line()
    assert line.startswith("timings: ray_connect=0.25 train=2.00 total=")
    parsed = parse_line(f"2026-01-01 INFO runtime_agent.pipeline: {line}")
    assert parsed["train"] == 2.0 and parsed["ray_connect"] == 0.25 and "total" in parsed


def test_direct_executor_is_the_default_for_one_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    result = AgentRunner(
        "runtime_agent.examples.train_example:TrainExample",
        sources={"source": tabular(120, seed=1), "test_source": tabular(30, seed=2)},
        operator_conf={"labelColumn": "label", "hidden": 8},
        epochs=2,
        workdir=tmp_path,
        train_executor=None,  # type: ignore[arg-type]
    ).run()
    assert result.ok, result.reason
    assert "direct train: 1 worker in the agent process, CPU" in caplog.text
    assert result.train is not None and result.train.num_workers == 1 and not result.train.use_gpu
    assert [v["epoch"] for _, v in result.metrics] == [1.0, 2.0]
    timings = parse_line(caplog.text)
    assert {"load", "read", "train", "model_upload", "callbacks", "total"} <= set(timings)
    assert "ray_connect" not in timings


def test_direct_executor_trains_on_the_gpu_when_asked(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    import asyncio

    from runtime_agent.callbacks import RecordingCallbacks
    from runtime_agent.runner import run_task
    from runtime_agent.settings import AgentSettings

    runner = AgentRunner(
        "runtime_agent.examples.train_example:TrainExample",
        sources={"source": tabular(120, seed=1)},
        operator_conf={"labelColumn": "label"},
        workdir=tmp_path,
    )
    spec = runner.build_spec().model_copy(update={"service_info": ServiceInfoSpec(si_gpu=1)})
    settings = AgentSettings(data_dir=tmp_path / "data", model_dir=tmp_path / "model")
    outcome = asyncio.run(run_task(settings, RecordingCallbacks(), spec=spec, train_executor="direct"))
    assert outcome.train is not None and outcome.train.use_gpu, outcome.reason
