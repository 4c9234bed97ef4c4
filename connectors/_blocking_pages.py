"""A blocking page generator stepped in worker threads, safe to close while a step is under way.

`asyncio.to_thread(next, gen)` keeps running in its thread when the awaiting task is cancelled;
closing the generator then would meet a generator still executing (`ValueError`), and an error
raised while a reader is being cancelled must not take the cancellation's place. `BlockingPages`
holds a lock around each step, so `close()` waits (in a worker thread, never on the event loop)
for the step under way to end and then closes the generator: its file handles and cursors are
released every time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator
from typing import Any


class _End:
    """Sentinel: the generator is exhausted."""


END = _End()


class BlockingPages:
    """Steps `pages` one item at a time in worker threads; `close()` waits for a running step."""

    def __init__(self, pages: Generator[Any, None, None]) -> None:
        self._pages = pages
        self._lock = threading.Lock()

    def _step(self) -> Any:
        with self._lock:
            return next(self._pages, END)

    def _close(self) -> None:
        with self._lock:
            self._pages.close()

    async def next(self) -> Any:
        """The next item, or `END` when the generator is exhausted."""
        return await asyncio.to_thread(self._step)

    async def close(self) -> None:
        """Close the generator once no step is running (the thread finishes it even if this is cancelled)."""
        await asyncio.to_thread(self._close)
