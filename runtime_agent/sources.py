"""Data I/O for a run: connection specs -> connectors, source reads in `order`, buffered sink writes.

All data and model bytes go through `connectors.registry.open_connector`; one connector is opened
per connection and shared by every source that uses it, then closed at the end of the run.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.base import ConnectionConfig, ReadOptions
from runtime_agent.logs import add_secret

if TYPE_CHECKING:
    import pandas as pd

    from connectors.base import Connector
    from control.schemas import ConnectionSpec, SourceSpec
    from runtime_agent.context import OperatorContext

logger = logging.getLogger(__name__)

ConnectorOpener = Callable[[ConnectionConfig], Any]
"""`open_connector(config) -> Connector` (or an awaitable of one)."""


def connection_config(spec: ConnectionSpec, *, default_addr: str | Path | None = None) -> ConnectionConfig:
    """The connector config for a wire `ConnectionSpec` (its password is registered as a secret).

    Args:
        spec: the connection as control sends it.
        default_addr: base directory for a FILE connection whose addr is empty.
    """
    add_secret(spec.connect_password)
    addr = spec.connect_addr
    if not addr and default_addr is not None and str(spec.connect_type) == "FILE":
        addr = str(default_addr)
    return ConnectionConfig(
        connect_type=str(spec.connect_type),
        addr=addr,
        port=spec.connect_port,
        account=spec.connect_account,
        password=spec.connect_password,
        space=spec.connect_space,
        colony_type=str(spec.colony_type),
        source_conf=dict(spec.source_conf),
    )


def read_options(source: SourceSpec) -> ReadOptions:
    """The connector read knobs of a data source."""
    conf = source.source_conf
    return ReadOptions(
        connect_read_num=source.connect_read_num,
        paginate_read_num=source.paginate_read_num,
        operator_read_num=source.operator_read_num,
        disposable=source.disposable,
        async_load=source.async_load,
        prefetch_pages=int(conf.get("prefetchPages", 2) or 2),
        key=conf.get("key") or None,
        data_format=source.data_format,
    )


def default_opener() -> ConnectorOpener:
    """`connectors.registry.open_connector`, imported on first use."""
    from connectors.registry import open_connector  # deferred: registry imports connector modules

    return open_connector


class Connections:
    """Opens one connector per distinct connection (`async with`) and closes them all in `aclose`."""

    def __init__(self, opener: ConnectorOpener | None = None) -> None:
        self._opener = opener
        self._open: dict[tuple[Any, ...], Connector] = {}
        self._stack = contextlib.AsyncExitStack()

    async def get(self, spec: ConnectionSpec, *, default_addr: str | Path | None = None) -> Connector:
        """The connector for `spec`, opened on first use."""
        config = connection_config(spec, default_addr=default_addr)
        key = (config.connect_type, config.addr, config.port, config.account, config.space, spec.connect_name)
        if key not in self._open:
            opener = self._opener or default_opener()
            conn = opener(config)
            if inspect.isawaitable(conn):
                conn = await conn
            self._open[key] = await self._stack.enter_async_context(conn)
            logger.debug("opened connection %s (%s)", spec.connect_name, config.describe())
        return self._open[key]

    async def aclose(self) -> None:
        """Close every connector opened so far (errors are logged, not raised)."""
        self._open = {}
        stack, self._stack = self._stack, contextlib.AsyncExitStack()
        try:
            await stack.aclose()
        except Exception as exc:  # closing must not hide the run's own outcome
            logger.warning("closing connectors failed: %s", exc)


def ordered(sources: Sequence[SourceSpec]) -> list[SourceSpec]:
    """Sources sorted by `order`, ties kept in the spec's order."""
    return [s for _, s in sorted(enumerate(sources), key=lambda pair: (pair[1].order, pair[0]))]


class SourceReader:
    """Reads the run's input sources through their connectors."""

    def __init__(self, sources: Sequence[SourceSpec], connections: Connections) -> None:
        self.sources = ordered(sources)
        self.connections = connections

    def with_role(self, role: str) -> list[SourceSpec]:
        """The sources with `role`, in order."""
        return [s for s in self.sources if str(s.source_type) == role]

    async def read(self, source: SourceSpec) -> AsyncIterator[pd.DataFrame]:
        """Yield the batches of one source (one whole DataFrame when it is `disposable`)."""
        import pandas as pd  # deferred: keep `import runtime_agent` light

        conn = await self.connections.get(source.connection)
        options = read_options(source)
        logger.info(
            "reading %s %r: %s from %s",
            source.source_type,
            source.source_name,
            source.operate_execute,
            conn.config.describe(),
        )
        if not source.disposable:
            async for batch in conn.read(source.operate_execute, options):
                yield batch
            return
        frames = [batch async for batch in conn.read(source.operate_execute, options)]
        if len(frames) == 1:
            yield frames[0]
        elif frames:
            yield pd.concat(frames, ignore_index=True)

    async def read_role(self, role: str) -> AsyncIterator[pd.DataFrame]:
        """Yield the batches of every source with `role`, in order."""
        for source in self.with_role(role):
            async for batch in self.read(source):
                yield batch


class SinkWriter:
    """Writes the frames an operator emits to every sink source, in chunks of `flush_rows`.

    The first write to each sink uses its `sourceConf.writeMode` (`append` by default, or
    `replace`); later writes of the same run append.
    """

    def __init__(
        self, sinks: Sequence[SourceSpec], connections: Connections, ctx: OperatorContext, flush_rows: int
    ) -> None:
        self.sinks = ordered(sinks)
        self.connections = connections
        self.ctx = ctx
        self.flush_rows = max(1, flush_rows)
        self.rows_written = 0
        self.rows_dropped = 0
        self._written_once: set[int] = set()

    async def flush_if_full(self) -> None:
        """Write the buffered rows if there are at least `flush_rows` of them."""
        if self.ctx.pending_rows >= self.flush_rows:
            await self.flush()

    async def flush(self) -> int:
        """Write every buffered row to every sink; returns the rows taken from the buffer."""
        import pandas as pd  # deferred: keep `import runtime_agent` light

        frames = self.ctx.drain_emitted()
        if not frames:
            return 0
        df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        if not self.sinks:
            if not self.rows_dropped:
                logger.warning("the operator emitted rows but the task has no sink data source; dropped")
            self.rows_dropped += len(df)
            return len(df)
        for index, sink in enumerate(self.sinks):
            conn = await self.connections.get(sink.connection)
            mode = "append"
            if index not in self._written_once:
                mode = str(sink.source_conf.get("writeMode", "append")).lower()
                self._written_once.add(index)
            written = await conn.write(
                df, sink.operate_execute, mode="replace" if mode == "replace" else "append"
            )
            logger.info(
                "wrote %d rows to sink %r (%s, %s)", written, sink.source_name, sink.operate_execute, mode
            )
        self.rows_written += len(df)
        return len(df)
