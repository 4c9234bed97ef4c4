"""Operators used by the end-to-end tests (imported by real agent processes)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from runtime_agent.api import Operator


class WaitForFile(Operator):
    """Blocks in taskInitExecute until `operatorConf.releaseFile` exists: a run that stays running."""

    async def task_init_execute(self, ctx: Any) -> None:
        release = Path(ctx.operator_conf["releaseFile"])
        ctx.logger.info("waiting for %s", release)
        while not await asyncio.to_thread(release.exists):  # noqa: ASYNC110 - another process makes the file
            await asyncio.sleep(0.1)


class Explodes(Operator):
    """Raises from operateExecute on the first batch."""

    def operate_execute(self, batch: Any, ctx: Any) -> None:
        raise ValueError("column 'f0' has negative values")


class CopyRows(Operator):
    """A data operator: every batch it reads goes to the sink(s), with a doubled `f0`.

    With `operatorConf.releaseFile` set it first waits for that file (a run a test can watch running).
    """

    async def task_init_execute(self, ctx: Any) -> None:
        if ctx.operator_conf.get("releaseFile"):
            await WaitForFile().task_init_execute(ctx)

    def operate_execute(self, batch: Any, ctx: Any) -> None:
        ctx.emit(batch.assign(f0x2=batch["f0"] * 2))
