"""Adaptive batching for the model server: concurrent infer requests to one model share predict calls.

Each request's decoded rows are `submit`ted with a key (its columns and dtypes); requests with
the same key are gathered into one batch of at most `max_size` requests (their rows are
concatenated: a batch has their sum) and handed to the runner as one list, one batch at a time,
oldest first. A request with no rows runs alone. The batch waits
for company at most `max_wait_s` after its first request, and never for requests that are not
on their way: while every request the server has received (`arriving`) has joined, the batch
runs at once, so a lone caller pays no wait and a busy server fills batches while the previous
one runs. Each caller gets exactly its own result back; an error the runner raises fails every
request of that batch, an error it returns for one item fails that request alone.

Loop-bound state (futures, the drain task) is made afresh for each event loop that uses the
batcher, so a server loaded in one loop may answer in another (tests, `asyncio.run` per call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from runtime_agent._aio import call_and_settle, in_daemon_thread
from runtime_agent.errors import ModelError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping, Sequence

logger = logging.getLogger(__name__)

P = TypeVar("P")
R = TypeVar("R")
_Call = tuple["Callable[..., Any]", tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]

DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_MAX_BATCH_WAIT_MS = 2.0


@dataclass(frozen=True)
class BatchConfig:
    """How requests are gathered: `maxBatchSize` requests at most, `maxBatchWaitMs` wait at most.

    The size counts requests, as MLServer's `max_batch_size` does (a batch's rows are theirs
    added up). A size of 1 or a wait of 0 turns batching off: each request is its own predict
    call (still one at a time per model).
    """

    max_size: int = DEFAULT_MAX_BATCH_SIZE
    max_wait_s: float = DEFAULT_MAX_BATCH_WAIT_MS / 1000

    @property
    def enabled(self) -> bool:
        """True when requests may share a predict call."""
        return self.max_size > 1 and self.max_wait_s > 0

    @classmethod
    def from_model_conf(cls, conf: Mapping[str, Any] | None) -> BatchConfig:
        """From a model's modelConf (`maxBatchSize`, `maxBatchWaitMs`; defaults 32 and 2).

        Raises:
            ModelError: a value is not a whole number >= 1 / a number >= 0.
        """
        conf = conf or {}
        size = conf.get("maxBatchSize", DEFAULT_MAX_BATCH_SIZE)
        wait = conf.get("maxBatchWaitMs", DEFAULT_MAX_BATCH_WAIT_MS)
        if isinstance(size, bool) or not isinstance(size, int | float) or size != int(size) or size < 1:
            raise ModelError(
                f"modelConf.maxBatchSize must be a whole number >= 1 (1: no batching), got {size!r}"
            )
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not math.isfinite(wait) or wait < 0:
            raise ModelError(f"modelConf.maxBatchWaitMs must be a number >= 0 (0: no batching), got {wait!r}")
        return cls(max_size=int(size), max_wait_s=float(wait) / 1000)


@dataclass
class BatchStats:
    """What the batcher has done: predict calls (`batches`), requests and rows through them."""

    batches: int = 0
    requests: int = 0
    rows: int = 0
    largest: int = 0
    """The most requests one batch held."""


@dataclass(slots=True)
class _Item(Generic[P, R]):
    value: P
    rows: int
    future: asyncio.Future[R]


@dataclass
class _Group(Generic[P, R]):
    since: float
    items: list[_Item[P, R]] = field(default_factory=list)


class Batcher(Generic[P, R]):
    """Gathers concurrent `submit`s into batches for `runner` (see the module docstring).

    Args:
        runner: runs one batch: the items in order -> one result (or exception) per item.
        config: sizes and wait.
        rows: the row count of an item.
        key: items with equal keys may share a batch.
    """

    def __init__(
        self,
        runner: Callable[[list[P]], Awaitable[Sequence[R | BaseException]]],
        config: BatchConfig,
        *,
        rows: Callable[[P], int],
        key: Callable[[P], Hashable],
    ) -> None:
        self.config = config
        self.stats = BatchStats()
        self._runner = runner
        self._rows = rows
        self._key = key
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: OrderedDict[Hashable, _Group[P, R]] = OrderedDict()
        self._drainer: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._arriving = 0

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop: what the old one held cannot be awaited here
            self._loop, self._pending, self._drainer, self._wake, self._arriving = (
                loop,
                OrderedDict(),
                None,
                None,
                0,
            )
        return loop

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Mark a request on its way (body being read and decoded) until the block ends."""
        self._bind()
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1
            if self._arriving == 0:
                self._poke()

    async def submit(self, value: P) -> R:
        """Run `value` in a batch and return its own result.

        Raises:
            Exception: what the runner raised for its batch, or returned for this item.
        """
        loop = self._bind()
        item: _Item[P, R] = _Item(value, self._rows(value), loop.create_future())
        key: Hashable = None  # batching off: one queue, first come first served
        if self.config.enabled:
            key = self._key(value) if item.rows > 0 else object()  # no rows: alone
        group = self._pending.get(key)
        if group is None:
            group = self._pending[key] = _Group(loop.time())
        group.items.append(item)
        if len(group.items) >= self.config.max_size:
            self._poke()
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain(), name="atom-batcher")
        return await item.future

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                key, group = next(iter(self._pending.items()))
                if self.config.enabled:
                    deadline = group.since + self.config.max_wait_s
                    while len(group.items) < self.config.max_size and self._arriving > 0:
                        remaining = deadline - loop.time()
                        if remaining <= 0:
                            break
                        self._wake = loop.create_future()
                        await asyncio.wait((self._wake,), timeout=remaining)
                        self._wake = None
                batch = self._cut(key, group, loop.time())
                if batch:
                    await self._run(batch)
        finally:
            if self._loop is loop:
                self._drainer = None

    def _cut(self, key: Hashable, group: _Group[P, R], now: float) -> list[_Item[P, R]]:
        """Take the group's oldest items whose callers still wait, `max_size` at most."""
        limit = self.config.max_size if self.config.enabled else 1
        taken: list[_Item[P, R]] = []
        while group.items and len(taken) < limit:
            item = group.items.pop(0)
            if not item.future.done():  # done: its caller went away
                taken.append(item)
        if group.items:
            group.since = now  # the rest waits afresh, after what runs now
        else:
            del self._pending[key]
        return taken

    async def _run(self, batch: list[_Item[P, R]]) -> None:
        self.stats.batches += 1
        self.stats.requests += len(batch)
        self.stats.rows += sum(i.rows for i in batch)
        self.stats.largest = max(self.stats.largest, len(batch))
        try:
            results = await self._runner([i.value for i in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch runner gave {len(results)} results for {len(batch)} requests")
        except Exception as exc:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        except BaseException as exc:  # cancelled (shutdown): the callers hear of it too
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(RuntimeError(f"the server stopped during predict: {exc!r}"))
            raise
        for item, result in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    async def aclose(self) -> None:
        """Fail what still waits and stop the drain task (the server is shutting down)."""
        for group in self._pending.values():
            for item in group.items:
                if not item.future.done():
                    item.future.set_exception(RuntimeError("the server is shutting down"))
        self._pending.clear()
        drainer, self._drainer = self._drainer, None
        if drainer is not None and not drainer.done():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                return
            if drainer.get_loop() is running:
                drainer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drainer


class WorkerThread:
    """One daemon thread that runs calls in order (a model's predicts, one batch at a time).

    Started on the first call; it ends after `idle_s` without work (a new one starts on the next
    call) or at `aclose`, so a server nobody closes leaves no thread behind for long.
    """

    def __init__(self, name: str, *, idle_s: float = 30.0) -> None:
        self.name = name
        self.idle_s = idle_s
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        """Run `fn(*args)` on the thread (after the calls before it) and await its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._lock:
            if self._thread is None:
                self._queue = queue.SimpleQueue()
                self._thread = threading.Thread(target=self._work, args=(self._queue,), name=self.name)
                self._thread.daemon = True
                self._thread.start()
            self._queue.put((fn, args, loop, future))
        return await future

    def _work(self, calls: queue.SimpleQueue[_Call | None]) -> None:
        while True:
            try:
                item = calls.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:  # `run` puts under this lock: empty here means nothing is coming
                    if calls.empty():
                        if self._queue is calls:
                            self._thread = None
                        return
                continue
            if item is None:  # aclose
                return
            call_and_settle(*item)

    async def aclose(self) -> None:
        """End the thread once the calls given to it have run, and wait for that."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            await in_daemon_thread(thread.join)
