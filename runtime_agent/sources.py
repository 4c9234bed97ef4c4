"""Data I/O for a run: connection specs -> connectors, source reads in `order`, staged sink writes.

All data and model bytes go through `connectors.registry.open_connector`; one connector is opened
per connection and shared by every source that uses it, then closed at the end of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.base import ConnectionConfig, ReadOptions, WriteOptions
from connectors.base import write_options as base_write_options
from runtime_agent.logs import add_secret

if TYPE_CHECKING:
    import pandas as pd

    from connectors.base import Connector, Sink
    from control.schemas import ConnectionSpec, SourceProgress, SourceSpec
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
    return spec.connector_config(addr=addr)


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


def connector_class(connect_type: str) -> type[Connector]:
    """The connector class registered for a connectType (imported on first use)."""
    from connectors.registry import get  # deferred: registry imports connector modules

    return get(connect_type)


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


def _log_prefetch_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("pre-download failed (the read will retry): %s", task.exception())


PARQUET_SUFFIXES = (".parquet", ".pq")


async def known_total(source: SourceSpec, conn: Connector) -> int | None:
    """The source's row count where it costs next to nothing (a local parquet file's footer); else None."""
    target = source.operate_execute
    fmt = source.data_format.lower()
    if str(source.connection.connect_type) != "FILE" or target.endswith("/"):
        return None
    if fmt not in ("parquet", "pq") and not (not fmt and target.lower().endswith(PARQUET_SUFFIXES)):
        return None
    locate = getattr(conn, "locate", None)
    try:
        location = locate(target) if locate is not None else None
        if not isinstance(location, Path):  # an HTTP file: its footer is not here yet
            return None
        import pyarrow.parquet as pq  # deferred: only parquet sources need it

        return int(await asyncio.to_thread(lambda: pq.read_metadata(location).num_rows))
    except Exception as exc:  # a count is a nicety: the read itself reports real problems
        logger.debug("no row count for %r: %s", source.source_name, exc)
        return None


@dataclass
class SourceCount:
    """Rows read from one source in the current pass over it, and its row count when known."""

    rows_read: int = 0
    rows_total: int | None = None


class SourceReader:
    """Reads the run's input sources through their connectors, counting rows per source.

    Attributes:
        counts: sourceName -> `SourceCount`, for the heartbeats (`progress()`).
    """

    def __init__(self, sources: Sequence[SourceSpec], connections: Connections) -> None:
        self.sources = ordered(sources)
        self.connections = connections
        self.counts: dict[str, SourceCount] = {}
        self._prefetches: list[asyncio.Task[None]] = []

    def progress(self) -> dict[str, SourceProgress] | None:
        """Per-source progress for a heartbeat; None before any source was read."""
        from control.schemas import SourceProgress  # deferred: keep `import runtime_agent` light

        if not self.counts:
            return None
        return {
            name: SourceProgress(rows_read=c.rows_read, rows_total=c.rows_total)
            for name, c in self.counts.items()
        }

    async def prefetch(self) -> None:
        """Start every source's pre-download (object stores, HTTP files) in the background.

        Failures are only logged here: the source's read raises the same error where it matters.
        """
        for source in self.sources:
            conn = await self.connections.get(source.connection)
            task = asyncio.create_task(
                conn.prefetch(source.operate_execute), name=f"prefetch {source.source_name}"
            )
            task.add_done_callback(_log_prefetch_failure)
            self._prefetches.append(task)

    async def aclose(self) -> None:
        """Cancel pre-downloads still running (a cancelled download resumes on the next fetch)."""
        tasks, self._prefetches = self._prefetches, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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
        count = self.counts.setdefault(source.source_name, SourceCount())
        count.rows_read = 0  # a new pass over the source
        if count.rows_total is None:
            count.rows_total = await known_total(source, conn)
        if not source.disposable:
            async for batch in conn.read(source.operate_execute, options):
                count.rows_read += len(batch)
                yield batch
            count.rows_total = count.rows_read  # read to the end: exact
            return
        frames = []
        async for batch in conn.read(source.operate_execute, options):
            count.rows_read += len(batch)
            frames.append(batch)
        count.rows_total = count.rows_read
        if len(frames) == 1:
            yield frames[0]
        elif frames:
            yield pd.concat(frames, ignore_index=True)

    async def files(self, role: str) -> list[Path]:
        """Local paths of every source with `role`, in order (object stores: the cached copies)."""
        paths = []
        for source in self.with_role(role):
            conn = await self.connections.get(source.connection)
            paths.append(await conn.local_file(source.operate_execute))
        return paths

    async def read_role(self, role: str) -> AsyncIterator[pd.DataFrame]:
        """Yield the batches of every source with `role`, in order."""
        for source in self.with_role(role):
            async for batch in self.read(source):
                yield batch


def write_options(sink: SourceSpec, run_key: str) -> WriteOptions:
    """The write knobs of a sink data source (`sourceConf`: writeMode, key, runKey, idempotent).

    `append` sinks are run-keyed with `run_key`, the run's identity, wherever the connector says
    that costs nothing (`Connector.run_keyed_by_default`: tables and key stores, and datasets
    whose target ends in "/"): a run that is retried, or an agent restarted for the same run,
    replaces its own rows instead of adding them twice. A single FILE is run-keyed in a hidden
    index beside it (`connectors._run_index`), so the file gains no column; a single object is
    run-keyed only when asked (`"idempotent": true`, which adds the `_atom_run` column, as it
    does for a single file).
    `"idempotent": false` turns it off everywhere;
    `"runKey"` sets the key explicitly (for example a business date, so every re-run of that
    date replaces the date's rows). `replace` and `upsert` are idempotent by nature.
    """
    conf = sink.source_conf
    mode = str(conf.get("writeMode", "append")).lower()
    key = conf.get("key") or conf.get("keyColumns")
    flag = str(conf.get("idempotent", "")).lower()
    keyed = flag in ("true", "1", "yes") or (
        flag == ""
        and connector_class(str(sink.connection.connect_type)).run_keyed_by_default(sink.operate_execute)
    )
    explicit = str(conf.get("runKey") or "")
    run = explicit or (run_key if keyed and mode == "append" else "")
    options = base_write_options(mode, key, run or None, sink.data_format)  # type: ignore[arg-type]
    file_type = str(sink.connection.connect_type).upper() == "FILE"
    single_file = file_type and not sink.operate_execute.endswith("/")
    if single_file and mode == "append" and not run and flag == "":
        # a plain file: run-keyed in a hidden index beside it, so the file gains no column
        options = dataclasses.replace(options, run_key=run_key, run_index=True)
    return options


class SinkWriter:
    """Streams the frames an operator emits into every sink, committed together at the end of the run.

    Each sink data source gets one connector `Sink`, opened at the first flush; rows are flushed to
    it in chunks of `flush_rows` as the operator emits them (staged by the store, invisible to
    readers), and `commit()` makes them visible once the run's work is done. A failed or stopped
    run calls `abort()`: the sinks' targets stay as they were before the run.
    """

    def __init__(
        self,
        sinks: Sequence[SourceSpec],
        connections: Connections,
        ctx: OperatorContext,
        flush_rows: int,
        run_key: str = "",
    ) -> None:
        self.sinks = ordered(sinks)
        self.connections = connections
        self.ctx = ctx
        self.flush_rows = max(1, flush_rows)
        self.run_key = run_key
        self.rows_written = 0
        self.rows_dropped = 0
        self._open: dict[int, Sink] = {}
        self._finished = False

    async def flush_if_full(self) -> None:
        """Write the buffered rows if there are at least `flush_rows` of them."""
        if self.ctx.pending_rows >= self.flush_rows:
            await self.flush()

    async def _sink(self, index: int, spec: SourceSpec) -> Sink:
        if index not in self._open:
            conn = await self.connections.get(spec.connection)
            options = write_options(spec, self.run_key)
            self._open[index] = conn.sink(spec.operate_execute, options)
            logger.info(
                "sink %r: %s (%s%s)",
                spec.source_name,
                spec.operate_execute,
                options.mode,
                f", run key {options.run_key}" if options.run_key else "",
            )
        return self._open[index]

    async def flush(self) -> int:
        """Stage every buffered row in every sink; returns the rows taken from the buffer."""
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
        for index, spec in enumerate(self.sinks):
            sink = await self._sink(index, spec)
            await sink.write(df)
        self.rows_written += len(df)
        return len(df)

    async def commit(self) -> int:
        """Flush what is buffered, then make every sink's rows visible; returns rows per sink."""
        await self.flush()
        self._finished = True
        for index, spec in enumerate(self.sinks):
            sink = self._open.get(index)
            if sink is None:
                continue
            written = await sink.commit()
            logger.info("committed %d rows to sink %r (%s)", written, spec.source_name, spec.operate_execute)
        return self.rows_written

    async def abort(self) -> None:
        """Drop whatever the sinks staged (best effort; a failing abort is logged)."""
        if self._finished:
            return
        self._finished = True
        for index, sink in self._open.items():
            try:
                await sink.abort()
            except Exception as exc:  # the run's own failure is what the user must see
                logger.warning("aborting sink %r failed: %s", self.sinks[index].source_name, exc)
