"""A scheduled run's logical date reaches the operator: `ctx.logical_date` (aware, UTC) and
runParameter `logicalDate`; a run that is not scheduled has none."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from control.schemas import TaskSpec
from runtime_agent.api import Operator
from runtime_agent.context import logical_date_of
from runtime_agent.testing import AgentRunner


class DateReader(Operator):
    def __init__(self) -> None:
        self.seen: list[tuple[datetime | None, str | None]] = []

    def task_init_execute(self, ctx: Any) -> None:
        self.seen.append((ctx.logical_date, ctx.run_parameter.get("logicalDate")))

    def operate_execute(self, batch: pd.DataFrame, ctx: Any) -> None:
        ctx.emit(batch)


class Scheduled(AgentRunner):
    """Runs the operator as a scheduled exam run's node (spec as control hands it over)."""

    logical_date: str | None = "2031-01-01T02:00:00"

    def build_spec(self) -> TaskSpec:
        spec = super().build_spec()
        spec.logical_date = self.logical_date
        if self.logical_date:
            spec.run_parameter = {"logicalDate": self.logical_date}
        return spec


async def test_the_operator_sees_the_logical_date() -> None:
    op = DateReader()
    data = {"source": pd.DataFrame({"x": [1, 2]})}
    result = await Scheduled(op, sources=data, runtime_type="PYTHON", model_name=None).arun()
    assert result.ok, result.reason
    assert op.seen == [(datetime(2031, 1, 1, 2, tzinfo=UTC), "2031-01-01T02:00:00")]

    plain = DateReader()
    result = await AgentRunner(plain, sources=data, runtime_type="PYTHON", model_name=None).arun()
    assert result.ok, result.reason
    assert plain.seen == [(None, None)]


def test_logical_date_text() -> None:
    assert logical_date_of("2031-01-01T02:00:00") == datetime(2031, 1, 1, 2, tzinfo=UTC)
    assert logical_date_of("2031-01-01T03:00:00+01:00") == datetime(2031, 1, 1, 2, tzinfo=UTC)
    assert logical_date_of(None) is None and logical_date_of("") is None
