"""The connector contract: a typed connection config, read knobs, and the async `Connector` ABC.

Every store (FILE, MYSQL, and the ones the registry adds) implements `Connector`;
callers reach implementations through `connectors.registry.open_connector`.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from connectors._atomic import bytes_atomically
from connectors.errors import ConnectorConfigError

if TYPE_CHECKING:
    import pandas as pd

WriteMode = Literal["append", "replace", "upsert"]
"""append adds rows; replace swaps the target's whole content; upsert updates rows by key."""

WRITE_MODES: tuple[str, ...] = ("append", "replace", "upsert")

RUN_COLUMN = "_atom_run"
"""Column a run-keyed table/file write adds, holding the run key of each row."""


@dataclass(frozen=True)
class ConnectionConfig:
    """How to reach one store: the seed-000 connection fields, typed.

    Attributes:
        connect_type: FILE, MYSQL, REDIS, S3 or ALIYUNOSS.
        addr: host name or address (FILE: a base directory, may be empty).
        port: TCP port; None takes the store's default.
        account: user name.
        password: secret; never part of repr() or any message.
        space: database (MYSQL), bucket (S3/OSS) or db index (REDIS).
        colony_type: SINGLE or GROUP (cluster).
        source_conf: extra driver options (charset, connect_timeout, ...).
    """

    connect_type: str
    addr: str = ""
    port: int | None = None
    account: str = ""
    password: str = field(default="", repr=False)
    space: str = ""
    colony_type: str = "SINGLE"
    source_conf: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """A secret-free name for messages: `MYSQL root@127.0.0.1:3306/test`."""
        where = self.addr + (f":{self.port}" if self.port else "")
        who = f"{self.account}@" if self.account else ""
        space = f"/{self.space}" if self.space else ""
        return f"{self.connect_type} {who}{where}{space}".strip()


@dataclass(frozen=True)
class ReadOptions:
    """The data-source read knobs (seed 000 §3.2 data source).

    Attributes:
        connect_read_num: rows per round trip to the store (0: the connector's default).
        paginate_read_num: rows per page (0: the connector's default).
        operator_read_num: rows per batch handed to the operator (0: one batch per page).
        disposable: read everything, then yield it as one DataFrame.
        async_load: prefetch the next pages while the consumer works (bounded queue).
        prefetch_pages: how many pages may wait in that queue.
        key: the key column for keyset pagination (MYSQL; default: the primary key).
        data_format: csv, parquet, pickle, json (files); ignored by table stores.
        resume_from: a reader's `cursor` from an earlier read; the read starts right after it
            (MYSQL: rows whose key is greater; REDIS: the SCAN cursor; files: the byte offset or
            row count the reader reported).
        arrow: yield `pyarrow.Table`s instead of pandas DataFrames.
        retries: how often a dropped connection is retried (with backoff) before the read fails;
            each retry resumes from the last page handed on, so no row is lost or repeated.
        retry_backoff_s: the first retry's delay; it doubles per attempt.
    """

    connect_read_num: int = 0
    paginate_read_num: int = 0
    operator_read_num: int = 0
    disposable: bool = False
    async_load: bool = True
    prefetch_pages: int = 2
    key: str | None = None
    data_format: str = ""
    resume_from: Any = None
    arrow: bool = False
    retries: int = 3
    retry_backoff_s: float = 0.2


@dataclass(frozen=True)
class WriteOptions:
    """How a sink writes (the data-sink knobs).

    Attributes:
        mode: append, replace (the target holds exactly what this sink wrote, swapped in at
            commit) or upsert (rows whose `key` exists are updated, others inserted).
        key: key columns: upsert matching, the primary key of a table the sink creates, the
            Redis key column.
        run_key: makes the write idempotent per run: what an earlier sink with the same run key
            wrote to this target is replaced by what this one writes, so a retried run never
            duplicates rows. Table and file stores keep it in the `_atom_run` column.
        data_format: csv, parquet, pickle, json, jsonl for file/object targets (default: the
            extension).
    """

    mode: WriteMode = "append"
    key: tuple[str, ...] = ()
    run_key: str | None = None
    data_format: str = ""
    run_index: bool = False
    """Keep `run_key` in a hidden index beside a single file instead of an `_atom_run` column in it
    (`connectors._run_index`; FILE sinks), so the user's file gains no column."""


def write_options(
    mode: WriteMode = "append",
    key: str | Sequence[str] | None = None,
    run_key: str | None = None,
    data_format: str = "",
) -> WriteOptions:
    """Build and check `WriteOptions` from the loose keyword form `write()` accepts."""
    if mode not in WRITE_MODES:
        raise ConnectorConfigError(f"unknown write mode {mode!r}: valid values are {', '.join(WRITE_MODES)}")
    keys = (key,) if isinstance(key, str) else tuple(key or ())
    if mode == "upsert" and not keys:
        raise ConnectorConfigError("mode upsert needs key columns: pass key='id' (or a list)")
    return WriteOptions(mode=mode, key=keys, run_key=run_key or None, data_format=data_format)


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object (a file, an S3/OSS key, an HTTP resource).

    Attributes:
        path: the path or key within the connection (secret-free).
        size: bytes.
        etag: the store's version tag (ETag, or mtime+size for files); changes when the object does.
        modified: last-modified time as a POSIX timestamp (0.0 when unknown).
    """

    path: str
    size: int
    etag: str = ""
    modified: float = 0.0


class Sink(abc.ABC):
    """A streaming write to one target: `write()` batches, then `commit()` makes them visible.

    Use it as `async with conn.sink(target, ...) as sink:`; leaving the block normally commits,
    an exception aborts, and an aborted or never-committed sink leaves the target as it was
    (tables stage rows and swap them in; objects use multipart/temp files and rename).

    Attributes:
        target: what is written.
        options: the write knobs.
        rows: rows accepted so far.
    """

    def __init__(self, target: str, options: WriteOptions) -> None:
        self.target = target
        self.options = options
        self.rows = 0
        self._finished = False

    @abc.abstractmethod
    async def write(self, batch: pd.DataFrame) -> None:
        """Add rows; they become visible at `commit()`."""

    @abc.abstractmethod
    async def commit(self) -> int:
        """Make everything written visible at once; returns the rows written."""

    @abc.abstractmethod
    async def abort(self) -> None:
        """Drop everything staged; the target stays as it was."""

    async def __aenter__(self) -> Sink:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._finished:
            return
        self._finished = True
        if exc_type is None:
            await self.commit()
        else:
            await self.abort()


class Connector(abc.ABC):
    """One open connection to a store. Use as `async with`; `aclose()` releases it."""

    connect_type: ClassVar[str]

    def __init__(self, config: ConnectionConfig) -> None:
        self.config = config

    @abc.abstractmethod
    def read(self, target: str, options: ReadOptions | None = None) -> AsyncIterator[pd.DataFrame]:
        """Yield DataFrames of `target` (a table, query, file path or key pattern)."""

    @classmethod
    def run_keyed_by_default(cls, target: str) -> bool:
        """Whether a platform sink appending to `target` should carry the run key unasked.

        Tables and key stores keep run keys beside the rows at no cost to the user's data, so
        they say yes; file and object stores say yes only for datasets (targets ending in "/"),
        where the run key names a part file, not for a single file that would gain a column.
        """
        return True

    @abc.abstractmethod
    def sink(self, target: str, options: WriteOptions | None = None) -> Sink:
        """A streaming writer to `target`; nothing is visible before its `commit()`."""

    async def write(
        self,
        df: pd.DataFrame,
        target: str,
        *,
        mode: WriteMode = "append",
        key: str | Sequence[str] | None = None,
        run_key: str | None = None,
        data_format: str = "",
    ) -> int:
        """Write `df` to `target` in one go; returns rows written. Nothing half-written stays visible.

        Args:
            df: the rows.
            target: a table, key prefix, file or object path.
            mode: append, replace or upsert (see `WriteOptions`).
            key: key column(s) for upsert / a created table's primary key / Redis keys.
            run_key: makes the write idempotent per run (see `WriteOptions.run_key`).
            data_format: file/object format when the extension does not tell.
        """
        options = write_options(mode, key, run_key, data_format)
        async with self.sink(target, options) as out:
            await out.write(df)
        return out.rows

    async def get_object(self, path: str) -> bytes:
        """Read one object (a model file) whole."""
        raise NotImplementedError(f"{self.connect_type} connections do not store objects")

    async def put_object(self, path: str, data: bytes) -> str:
        """Store one object atomically; returns its URI."""
        raise NotImplementedError(f"{self.connect_type} connections do not store objects")

    async def delete_object(self, path: str) -> None:
        """Remove one object; a missing object is not an error."""
        raise NotImplementedError(f"{self.connect_type} connections do not store objects")

    async def stat_object(self, path: str) -> ObjectInfo:
        """Size and version of one object; raises TargetNotFound when it is missing."""
        raise NotImplementedError(f"{self.connect_type} connections do not store objects")

    def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object under `prefix`, in key order (paginated underneath)."""
        raise NotImplementedError(f"{self.connect_type} connections do not store objects")

    async def download(self, path: str, dest: str) -> str:
        """Copy one object to the local file `dest` (atomically); returns `dest`.

        Object stores go through the shared file cache (parallel ranges, one download per object).
        """
        data = await self.get_object(path)
        await asyncio.to_thread(bytes_atomically, data, Path(dest))
        return dest

    async def upload(self, src: str, path: str) -> str:
        """Store the local file `src` at `path` atomically (multipart for large files); returns its URI."""
        data = await asyncio.to_thread(Path(src).read_bytes)
        return await self.put_object(path, data)

    async def local_file(self, target: str) -> Path:
        """A local path holding the bytes of the file/object `target`, for operators that want files.

        FILE gives the file itself; object stores and HTTP give the shared cache's copy
        (downloaded once in parallel ranges, whoever asks first), pinned so it is not evicted
        until this connector's `aclose()`.

        Raises:
            TargetNotFound: no such file or object.
        """
        raise NotImplementedError(f"{self.connect_type} connections do not hold files")

    async def prefetch(self, target: str) -> None:  # noqa: B027 - optional hook
        """Bring `target` into the local file cache ahead of its read (object stores and HTTP files).

        The runtime agent starts this for every source before it loads the operator, so large
        downloads overlap start-up; a later `read` of the same target waits for that download
        instead of starting its own. Stores that stream (tables, Redis) do nothing.
        """

    async def ping(self) -> None:  # noqa: B027 - optional hook
        """Check the store answers and the credentials work; raise a ConnectorError if not."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release sockets and threads."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
