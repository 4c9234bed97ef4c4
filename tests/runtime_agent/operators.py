"""Operators used by the runtime-agent tests (importable by real agent processes and Ray workers)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from runtime_agent.api import Operator, ReasoningOperator, TrainOperator


class Recorder(Operator):
    """Records every hook call as `(hook, source name or None, rows or None)`; hooks mix sync and async."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, int | None]] = []

    def _src(self, ctx: Any) -> str | None:
        return ctx.current_source.source_name if ctx.current_source is not None else None

    def task_init_execute(self, ctx: Any) -> None:
        self.calls.append(("task_init_execute", None, None))

    async def operate_execute_before(self, ctx: Any, source: Any) -> None:
        await asyncio.sleep(0)
        self.calls.append(("operate_execute_before", source.source_name, None))

    def data_execute_before(self, batch: pd.DataFrame, ctx: Any) -> None:
        self.calls.append(("data_execute_before", self._src(ctx), len(batch)))

    async def operate_execute(self, batch: pd.DataFrame, ctx: Any) -> None:
        self.calls.append(("operate_execute", self._src(ctx), len(batch)))
        ctx.emit(batch.assign(seen_by=ctx.role))

    def data_execute_after(self, batch: pd.DataFrame, ctx: Any) -> None:
        self.calls.append(("data_execute_after", self._src(ctx), len(batch)))

    async def operate_execute_after(self, ctx: Any) -> None:
        self.calls.append(("operate_execute_after", self._src(ctx), None))

    def task_finish_execute(self, ctx: Any) -> None:
        self.calls.append(("task_finish_execute", None, None))
        ctx.report(
            {"batches": sum(1 for c in self.calls if c[0] == "operate_execute"), "note": "not a number"}
        )

    # methods a data source's hook fields may name
    def drop_odd(self, batch: pd.DataFrame, ctx: Any) -> pd.DataFrame:
        self.calls.append(("drop_odd", self._src(ctx), len(batch)))
        return batch[batch["x"] % 2 == 0]

    def special_init(self, ctx: Any) -> None:
        self.calls.append(("special_init", None, None))


class CamelCase(Operator):
    """Hooks named the seed's way (camelCase)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def taskInitExecute(self, ctx: Any) -> None:
        self.calls.append("taskInitExecute")

    def operateExecute(self, batch: pd.DataFrame, ctx: Any) -> None:
        self.calls.append(f"operateExecute:{len(batch)}")


class Explodes(Operator):
    """Raises from operate_execute."""

    def operate_execute(self, batch: pd.DataFrame, ctx: Any) -> None:
        raise ValueError("column 'x' has negative values")


class LeaksSecret(Operator):
    """Raises with the connection's password in its message."""

    def operate_execute(self, batch: pd.DataFrame, ctx: Any) -> None:
        raise RuntimeError(f"could not log in with {ctx.operator_conf['password']}")


class NeedsArgs(Operator):
    def __init__(self, required: int) -> None:
        self.required = required


class WaitForFile(Operator):
    """Blocks in task_init_execute (a sync hook, in a thread) until operatorConf.releaseFile exists."""

    def task_init_execute(self, ctx: Any) -> None:
        release = Path(ctx.operator_conf["releaseFile"])
        ctx.logger.info("waiting for %s", release)
        import time

        while not release.exists():
            time.sleep(0.05)


class InProcessTrainer(Operator):
    """Trains without Ray: writes its model in task_finish_execute and reports a score."""

    def operate_execute(self, batch: pd.DataFrame, ctx: Any) -> None:
        ctx.collect(batch)

    def task_finish_execute(self, ctx: Any) -> None:
        df = ctx.frame("source")
        (ctx.model_dir / "mean.txt").write_text(str(float(df["x"].mean())))
        ctx.report({"score": 0.75, "loss": 0.1})


class FailingTrainLoop(TrainOperator):
    """A train_loop that raises in the worker."""

    @staticmethod
    def train_loop(config: dict[str, Any]) -> None:
        raise ArithmeticError(f"diverged after {config['epochs']} epochs")


class EchoReasoning(ReasoningOperator):
    """Doubles column x; used for batch-scoring runs with a fetched model."""

    factor: ClassVar[float] = 1.0

    def load(self, model_dir: Path) -> None:
        self.factor_value = float((Path(model_dir) / "factor.txt").read_text())

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"y": df["x"] * self.factor_value})


class EmitsThenFails(Operator):
    """Emits every batch it sees, then fails at the end of the task (after rows were flushed)."""

    def operate_execute(self, batch: pd.DataFrame, ctx: Any) -> None:
        ctx.emit(batch)

    def task_finish_execute(self, ctx: Any) -> None:
        raise RuntimeError("the operator failed after emitting its rows")


class Emits(Operator):
    """Emits every batch it sees."""

    def operate_execute(self, batch: pd.DataFrame, ctx: Any) -> None:
        ctx.emit(batch)


class ReadsFiles(Operator):
    """Works on its sources as local files (the file-operator path) and emits their sizes."""

    async def task_init_execute(self, ctx: Any) -> None:
        paths = await ctx.source_files("source")
        ctx.emit(pd.DataFrame({"name": [p.name for p in paths], "size": [p.stat().st_size for p in paths]}))
