"""Blocking facade over any async Connector, for plain scripts and notebooks.

The async connectors are the only implementation. This module runs them on one dedicated IO
event-loop thread (started on first use, a daemon) and hands results back to the calling thread:
`run(coro)` for one call, `iterate(async_iterator)` for a stream, and `SyncConnector` wrapping a
whole connector. Calling it from the IO thread itself would deadlock, so it refuses.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Coroutine, Generator, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from connectors.base import (
    ConnectionConfig,
    Connector,
    ObjectInfo,
    ReadOptions,
    Sink,
    WriteMode,
    WriteOptions,
)
from connectors.registry import open_connector, open_url

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    """The IO event loop, started in its daemon thread on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed() or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="atom-connectors-io", daemon=True)
            thread.start()
            _loop, _thread = loop, thread
        return _loop


def in_io_thread() -> bool:
    """True when called from the IO loop's own thread."""
    return _thread is not None and threading.current_thread() is _thread


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run a coroutine on the IO loop and wait for its result in this thread.

    Args:
        coro: the coroutine (e.g. `connector.ping()`).
        timeout: seconds to wait; None waits for ever. On timeout the coroutine is cancelled.

    Returns:
        The coroutine's result; its exception is raised here unchanged.

    Raises:
        RuntimeError: called from the IO loop's thread (that would deadlock).
        TimeoutError: the timeout passed.
    """
    if in_io_thread():
        coro.close()
        raise RuntimeError(
            "connectors.sync was called from its own IO loop thread, which would deadlock: "
            "await the async connector there instead"
        )
    future = asyncio.run_coroutine_threadsafe(coro, get_loop())
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError(f"connector call did not finish within {timeout} s") from None
    except BaseException:
        future.cancel()  # KeyboardInterrupt and friends: do not leave the call running
        raise


class _Done:
    """Sentinel: the async iterator is exhausted."""


_DONE = _Done()


async def _anext(iterator: AsyncIterator[T]) -> T | _Done:
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return _DONE


class SyncReader(Iterator["pd.DataFrame"]):
    """A blocking iterator of DataFrames over an async reader; close it (or use `with`) to stop early.

    Attributes:
        reader: the async reader underneath (a `PagedReader` for the built-in connectors).
    """

    def __init__(self, reader: AsyncIterator[pd.DataFrame]) -> None:
        self.reader = reader
        self._closed = False

    @property
    def cursor(self) -> Any:
        """The async reader's resume point (see `PagedReader.cursor`)."""
        return getattr(self.reader, "cursor", None)

    def __iter__(self) -> SyncReader:
        return self

    def __next__(self) -> pd.DataFrame:
        if self._closed:
            raise StopIteration
        item = run(_anext(self.reader))
        if isinstance(item, _Done):
            self._closed = True
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop reading and release the store's cursor."""
        if self._closed:
            return
        self._closed = True
        aclose = getattr(self.reader, "aclose", None)
        if aclose is not None:
            run(aclose())

    def __enter__(self) -> SyncReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        aclose = getattr(self.reader, "aclose", None)
        loop = _loop
        if self._closed or aclose is None or loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(aclose(), loop)  # fire and forget: GC must not block


def iterate(iterator: AsyncIterator[T]) -> Generator[T, None, None]:
    """Bridge an async iterator to a blocking one; the async side is closed when this one is."""
    try:
        while True:
            item = run(_anext(iterator))
            if isinstance(item, _Done):
                return
            yield item
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None and not in_io_thread():
            run(aclose())


class SyncConnector:
    """Blocking twin of any `Connector`: the same calls, run on the IO loop.

    Example:
        >>> with open_connector_sync("mysql://root@127.0.0.1:3306/test") as conn:
        ...     for df in conn.read("orders"): ...
    """

    def __init__(self, connector: Connector) -> None:
        self.connector = connector

    def read(self, target: str, options: ReadOptions | None = None) -> SyncReader:
        """Blocking `Connector.read`: an iterator of DataFrames with a `cursor`."""
        return SyncReader(self.connector.read(target, options))

    def write(self, df: pd.DataFrame, target: str, *, mode: WriteMode = "append", **kwargs: Any) -> int:
        """Blocking `Connector.write`; keywords as there (`key`, `run_key`, `data_format`)."""
        return run(self.connector.write(df, target, mode=mode, **kwargs))

    def sink(self, target: str, options: WriteOptions | None = None) -> SyncSink:
        """Blocking `Connector.sink`: `with conn.sink(t, WriteOptions(...)) as s: s.write(df)`."""
        return SyncSink(self.connector.sink(target, options))

    def delete_object(self, path: str) -> None:
        """Blocking `Connector.delete_object`."""
        run(self.connector.delete_object(path))

    def stat_object(self, path: str) -> ObjectInfo:
        """Blocking `Connector.stat_object`."""
        return run(self.connector.stat_object(path))

    def list_objects(self, prefix: str = "") -> Generator[ObjectInfo, None, None]:
        """Blocking `Connector.list_objects`: an iterator of `ObjectInfo`."""
        return iterate(self.connector.list_objects(prefix))

    def download(self, path: str, dest: str) -> str:
        """Blocking `Connector.download` (object stores go through the shared file cache)."""
        return run(self.connector.download(path, dest))

    def upload(self, src: str, path: str) -> str:
        """Blocking `Connector.upload`."""
        return run(self.connector.upload(src, path))

    def get_object(self, path: str) -> bytes:
        """Blocking `Connector.get_object`."""
        return run(self.connector.get_object(path))

    def put_object(self, path: str, data: bytes) -> str:
        """Blocking `Connector.put_object`."""
        return run(self.connector.put_object(path, data))

    def ping(self) -> None:
        """Blocking `Connector.ping`."""
        run(self.connector.ping())

    def close(self) -> None:
        """Release the connector's sockets and threads."""
        run(self.connector.aclose())

    def __enter__(self) -> SyncConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncSink:
    """Blocking twin of a `Sink`: `with` commits on success and aborts on an exception."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._done = False

    @property
    def rows(self) -> int:
        """Rows accepted so far."""
        return self._sink.rows

    def write(self, batch: pd.DataFrame) -> None:
        """Add rows; they become visible at `commit()`."""
        run(self._sink.write(batch))

    def commit(self) -> int:
        """Make everything written visible at once; returns the rows written."""
        self._done = True
        return run(self._sink.commit())

    def abort(self) -> None:
        """Drop what was staged; the target stays as it was."""
        self._done = True
        run(self._sink.abort())

    def __enter__(self) -> SyncSink:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self._done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def open_connector_sync(config: ConnectionConfig | str) -> SyncConnector:
    """`open_connector` for blocking code: a `SyncConnector` for a connection record or URL."""
    return SyncConnector(open_connector(config))


def open_url_sync(url: str) -> tuple[SyncConnector, str]:
    """`open_url` for blocking code: `conn, target = open_url_sync("s3://bucket/x.parquet?endpoint=...")`."""
    connector, target = open_url(url)
    return SyncConnector(connector), target
