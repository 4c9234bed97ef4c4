"""The agent's side of artifacts between nodes: the operator sees its resolved inputs (`ctx.inputs`),
fetches its input model's files (`ctx.input_model`), declares output files, and after the sinks
commit the agent stores those files beside the model and reports them with the sinks. A real agent
run in-process (`run_task`) over FILE connections, recording its calls."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import pandas as pd

from control.schemas import ModelSpec, RunState
from runtime_agent.api import Operator
from runtime_agent.callbacks import RecordingCallbacks
from runtime_agent.context import OperatorContext
from runtime_agent.runner import run_task
from runtime_agent.settings import AgentSettings
from runtime_agent.testing import AgentRunner


class Scorer(Operator):
    """Reads the weight its upstream trained, scores its source with it, leaves a report and a folder."""

    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}
        self.weight = 0.0

    async def task_init_execute(self, ctx: OperatorContext) -> None:
        self.seen = dict(ctx.inputs)
        model_dir = await ctx.input_model("model")
        self.weight = float((model_dir / "weight.txt").read_text())

    def operate_execute(self, batch: pd.DataFrame, ctx: OperatorContext) -> None:
        ctx.emit(batch.assign(scored=batch["x"] * self.weight))

    def task_finish_execute(self, ctx: OperatorContext) -> None:
        report = ctx.data_dir / "report.html"
        report.write_text(f"<p>weight {self.weight}</p>")
        ctx.declare_output("report", report)
        folder = ctx.data_dir / "plots"
        folder.mkdir()
        (folder / "a.txt").write_text("a")
        ctx.declare_output("plots", folder)


def upstream_model(store: Path) -> str:
    """A model archive (`weight.txt` = 2.5) where the upstream run stored it; its address."""
    work = store / "src"
    work.mkdir(parents=True)
    (work / "weight.txt").write_text("2.5")
    target = store / "tabular" / "7"
    target.mkdir(parents=True)
    with tarfile.open(target / "model.tar.gz", "w:gz") as tar:
        tar.add(work / "weight.txt", arcname="weight.txt")
    return "tabular/7/model.tar.gz"


async def test_inputs_reach_the_operator_and_outputs_are_reported(tmp_path: Path) -> None:
    runner = AgentRunner(
        Scorer(),
        sources={"source": pd.DataFrame({"x": [1.0, 2.0, 4.0]})},
        runtime_type="PYTHON",
        workdir=tmp_path,
    )
    spec = runner.build_spec()
    assert spec.model is not None and spec.model.connection is not None
    address = upstream_model(tmp_path / "models")
    value = {"modelId": 1, "modelName": "tabular", "modelVersionId": 9, "version": "7", "score": 0.9}
    spec.inputs = {"model": {"name": "model", "kind": "model", "uri": address, "value": value, "runId": 41}}
    spec.model = ModelSpec(model_id=1, model_name="tabular", model_version="7", model_address=address,
                           connection=spec.model.connection)  # fmt: skip
    callbacks = RecordingCallbacks()
    settings = AgentSettings(
        control_url=None,
        run_token=None,
        data_dir=tmp_path / "data",
        model_dir=tmp_path / "model",
        log_dir=tmp_path / "logs",
        summary_dir=tmp_path / "summary",
        share_dir=tmp_path / "share",
    )
    op = Scorer()
    outcome = await run_task(settings, callbacks, spec=spec, operator=op)
    assert outcome.state == RunState.SUCCEEDED, outcome.reason
    assert op.seen["model"]["runId"] == 41 and op.weight == 2.5
    assert pd.read_pickle(tmp_path / "outputs" / "sink.pkl")["scored"].tolist() == [2.5, 5.0, 10.0]

    reports = {r.name: r for r in callbacks.artifacts}
    assert set(reports) == {"sink:sink", "report", "plots"}
    sink = reports["sink:sink"]
    assert sink.kind.value == "dataset" and sink.value == {
        "connection": "runner-files", "target": "outputs/sink.pkl", "rows": 3, "format": "pickle"
    }  # fmt: skip
    report = reports["report"]
    stored = tmp_path / "models" / "outputs" / "runner" / "1" / "report" / "report.html"
    assert report.kind.value == "file" and stored.read_text() == "<p>weight 2.5</p>"
    assert report.uri.endswith("outputs/runner/1/report/report.html")
    assert report.value == {"file": "report.html", "bytes": stored.stat().st_size, "packed": False}
    packed = tmp_path / "models" / "outputs" / "runner" / "1" / "plots" / "plots.tar.gz"
    with tarfile.open(packed) as tar:
        assert tar.getnames() == ["a.txt"]
    assert reports["plots"].value["packed"] is True
    assert not callbacks.model_versions  # a PYTHON operator registers nothing


def test_declare_output_refuses_reserved_names(tmp_path: Path) -> None:
    ctx = OperatorContext(run_id=1, model_dir=tmp_path)
    for bad in ("model", "metrics", "a b", ""):
        try:
            ctx.declare_output(bad, tmp_path)
        except ValueError as exc:
            assert "output name" in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")
    ctx.declare_output("report.v1", tmp_path / "r.html")
    assert ctx.declared_outputs == {"report.v1": tmp_path / "r.html"}
