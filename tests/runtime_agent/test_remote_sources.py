"""A run whose source is a remote file: pre-downloaded before the operator loads, fetched once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from control.schemas import ConnectionSpec, ConnectType, SourceRole, SourceSpec
from runtime_agent.callbacks import RecordingCallbacks
from runtime_agent.runner import run_task
from runtime_agent.settings import AgentSettings
from runtime_agent.testing import AgentRunner
from tests.connectors.http_server import FileServer
from tests.runtime_agent.operators import ReadsFiles

pytestmark = pytest.mark.http


async def test_http_source_is_prefetched_and_downloaded_once(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    rows = 200_000
    df = pd.DataFrame({"x": np.arange(rows), "y": np.random.default_rng(1).random(rows)})
    df.to_parquet(served / "train.parquet", row_group_size=20_000)
    size = (served / "train.parquet").stat().st_size

    with FileServer(served) as server:
        runner = AgentRunner(
            ReadsFiles(), runtime_type="PYTHON", workdir=tmp_path / "run", paginate_read_num=50_000
        )
        spec = runner.build_spec()
        spec.sources.insert(
            0,
            SourceSpec(
                source_name="remote",
                source_type=SourceRole.SOURCE,
                operate_execute=server.url("train.parquet"),
                paginate_read_num=50_000,
                connection=ConnectionSpec(connect_name="web", connect_type=ConnectType.FILE),
            ),
        )
        settings = AgentSettings(
            control_url=None,
            run_token=None,
            data_dir=tmp_path / "run" / "data",
            model_dir=tmp_path / "run" / "model",
            cache_dir=tmp_path / "cache",
            heartbeat_interval=3600,
        )
        callbacks = RecordingCallbacks()
        outcome = await run_task(settings, callbacks, spec=spec, operator=ReadsFiles(), keep_emitted=True)
        assert outcome.state == "succeeded", outcome.reason
        assert outcome.ctx is not None
        # the operator got a local path (the cache's copy) and the source was also read as pages
        emitted = pd.concat(outcome.ctx.emitted_history, ignore_index=True)
        assert emitted["size"].tolist() == [size]
        assert outcome.ctx.rows_read == rows
        # pre-download, `source_files` and the paged read together cost exactly one download
        assert server.sent("/train.parquet") == size
