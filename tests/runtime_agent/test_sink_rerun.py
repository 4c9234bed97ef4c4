"""A plain single-file sink written by the agent is idempotent per run: the same run (a retry, a
re-run) executed again leaves each of its rows once, and the user's file gains no column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from connectors.base import RUN_COLUMN
from runtime_agent.testing import AgentRunner
from tests.runtime_agent.operators import Emits


def runner(tmp_path: Path, n: int, **kwargs: Any) -> AgentRunner:
    return AgentRunner(
        Emits(),
        sources={"source": pd.DataFrame({"x": range(n)})},
        runtime_type="PYTHON",
        workdir=tmp_path,
        **kwargs,
    )


async def test_the_same_run_twice_leaves_its_rows_once(tmp_path: Path) -> None:
    first = await runner(tmp_path, 400).arun()
    assert first.ok, first.reason
    again = await runner(tmp_path, 400).arun()
    assert again.ok, again.reason
    sink = again.sink
    assert sink is not None
    assert sink["x"].tolist() == list(range(400)) and RUN_COLUMN not in sink.columns


async def test_idempotent_false_appends_again(tmp_path: Path) -> None:
    for _ in range(2):
        result = await runner(tmp_path, 40, sink_conf={"idempotent": False}).arun()
        assert result.ok, result.reason
    assert result.sink is not None and len(result.sink) == 80
