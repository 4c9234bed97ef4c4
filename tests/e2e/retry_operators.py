"""An operator for the retry e2e test (imported by real agent processes)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from runtime_agent.api import Operator


class CopyThenStall(Operator):
    """Copies every batch it reads to the sink. On the run's first attempt, once
    `operatorConf.stallAfter` rows were emitted (and flushed to the sink's staging file), it writes
    `operatorConf.markFile` and blocks until killed; later attempts copy everything and finish."""

    def __init__(self) -> None:
        self.emitted = 0

    async def operate_execute(self, batch: Any, ctx: Any) -> None:
        first = os.environ.get("ATOM_RUN_ATTEMPT") == "1"
        if first and self.emitted >= int(ctx.operator_conf["stallAfter"]):
            mark = Path(ctx.operator_conf["markFile"])
            await asyncio.to_thread(mark.write_text, str(os.getpid()))
            ctx.logger.info("stalling after %d rows until killed", self.emitted)
            await asyncio.Event().wait()
        ctx.emit(batch)
        self.emitted += len(batch)
