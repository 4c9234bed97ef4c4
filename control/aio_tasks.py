"""Task housekeeping shared by the API's lifespan and the dispatch adapters."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait for it to end; a cancellation of the caller itself still propagates.

    `contextlib.suppress(CancelledError)` around `await task` would also swallow the cancellation
    of the task doing the waiting (a timeout around a close, a shutdown).
    """
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
