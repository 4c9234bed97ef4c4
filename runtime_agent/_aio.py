"""Small async helpers: call user code that may be sync or async without blocking the event loop.

Sync code runs in daemon threads (not the default executor), so a stopped run can exit at once
instead of waiting for a long hook or a Ray `fit()` to return.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking `fn(*args)` in a new daemon thread and await its result."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def runner() -> None:
        try:
            outcome: tuple[bool, Any] = (True, fn(*args))
        except BaseException as exc:  # handed to the awaiting task
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_settle, future, *outcome)

    threading.Thread(target=runner, name=f"atom-{getattr(fn, '__name__', 'call')}", daemon=True).start()
    return await future


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Await `fn(*args)` if it is async; run it in a daemon thread if it is sync.

    A sync function that returns an awaitable has that awaitable awaited too.
    """
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await in_daemon_thread(fn, *args)
    if inspect.isawaitable(result):
        return await result
    return result


class DedicatedThread:
    """One long-lived daemon thread that runs submitted calls in order.

    Ray must be started from a thread that outlives its session: the processes `ray.init` spawns
    die with the thread that spawned them (PR_SET_PDEATHSIG), so a thread per call will not do.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], Any, Any] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            call_and_settle(*item)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on this thread (after earlier calls) and await its result."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, args, loop, future))
        return await future


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


def call_and_settle(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
) -> None:
    """In a worker thread: run `fn(*args)` and hand its result or exception to `future` on `loop`."""
    try:
        outcome: tuple[bool, Any] = (True, fn(*args))
    except BaseException as exc:  # handed to the awaiting task
        outcome = (False, exc)
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(_settle, future, *outcome)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
