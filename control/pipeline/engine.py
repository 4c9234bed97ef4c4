"""Moves exam runs on as soon as a run ends, not only on the reconcile loop's next pass.

`ExamEngine.kick()` may be called from the event loop or from a worker thread (a sync route);
kicks that come while an advance is pending fold into it, and one lock keeps two advances from
claiming the same run (and makes a caller of `advance` wait for the dispatches of a kick).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import anyio.from_thread

from control.errors import ControlError
from control.pipeline import exam_runs

if TYPE_CHECKING:
    from control.orchestrator import Orchestrator
    from control.prepare import ReadyRun

logger = logging.getLogger(__name__)


class ExamEngine:
    def __init__(self, orch: Orchestrator) -> None:
        self.orch = orch
        self._lock = asyncio.Lock()
        self._pending = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def advance(self) -> list[int]:
        """One advance (`exam_runs.advance`) and the dispatch of every run it claimed; their ids."""
        self._loop = asyncio.get_running_loop()
        async with self._lock:  # held through the dispatch: whoever waits sees the runs started
            self._pending = False
            claimed = await self.orch.db(
                lambda ses: self.orch.prepare_claimed(ses, exam_runs.advance(session=ses))
            )
            await self.dispatch(claimed)
        return [c.run_id for c in claimed]

    async def dispatch(self, claimed: list[ReadyRun]) -> None:
        """Dispatch each claimed run (prepared in the claiming transaction, where it could be)."""
        refused = False
        for c in claimed:
            if c.prepared is None:  # its spec could not be built: it failed, its downstream runs decide
                refused = True
                continue
            logger.info("run %s: dispatching", c.run_id)
            try:
                await self.orch.dispatch(c.run_id, c.token, c.prepared)
            except ControlError as exc:  # dispatch already failed the run with the reason
                logger.warning("run %s could not be dispatched: %s", c.run_id, exc)
        if refused:
            self.kick()

    def kick(self) -> None:
        """Advance exam runs soon (a run just ended)."""
        if self._pending:
            return
        self._pending = True
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._kick_from_thread()
            return
        self.orch.spawn(self._kicked())

    def _kick_from_thread(self) -> None:
        try:
            anyio.from_thread.run_sync(self._spawn_kicked)
            return
        except RuntimeError:
            pass
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._spawn_kicked)
        else:
            self._pending = False  # the reconcile loop moves it on

    def _spawn_kicked(self) -> None:
        self.orch.spawn(self._kicked())

    async def _kicked(self) -> None:
        try:
            await self.advance()
        except Exception:
            self._pending = False
            logger.exception("advancing exam runs failed; the reconcile loop tries again")
