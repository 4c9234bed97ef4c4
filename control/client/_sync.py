"""`ControlClient`: the blocking face of `AsyncControlClient`, for scripts and notebooks.

Each call runs the async method on a private event-loop thread, so it also works
where a loop is already running (Jupyter), as long as it is not called from that thread.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from control.client._async import AsyncControlClient


class ControlClient:
    """Same methods as `AsyncControlClient`, blocking. Close with `close()` or `with`."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="atom-client", daemon=True)
        self._thread.start()
        self._async = self._run(self._make(base_url, token, transport, request_timeout=timeout))

    @staticmethod
    async def _make(
        base_url: str,
        token: str | None,
        transport: httpx.AsyncBaseTransport | None,
        *,
        request_timeout: float,
    ) -> AsyncControlClient:
        return AsyncControlClient(base_url, token=token, transport=transport, timeout=request_timeout)

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if threading.current_thread() is self._thread:
            raise RuntimeError("ControlClient called from its own loop thread; use AsyncControlClient")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._async, name)
        if not asyncio.iscoroutinefunction(method):
            return method  # type: ignore[no-any-return,unused-ignore]

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._run(method(*args, **kwargs))

        return call

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._async.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
