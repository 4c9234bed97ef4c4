"""The connector contract: a typed connection config, read knobs, and the async `Connector` ABC.

Every store (FILE, MYSQL, and the ones the registry adds) implements `Connector`;
callers reach implementations through `connectors.registry.open_connector`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    import pandas as pd

WriteMode = Literal["append", "replace"]


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
            (MYSQL: rows whose key is greater; FILE and keyless queries: that many rows skipped).
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


class Connector(abc.ABC):
    """One open connection to a store. Use as `async with`; `aclose()` releases it."""

    connect_type: ClassVar[str]

    def __init__(self, config: ConnectionConfig) -> None:
        self.config = config

    @abc.abstractmethod
    def read(self, target: str, options: ReadOptions | None = None) -> AsyncIterator[pd.DataFrame]:
        """Yield DataFrames of `target` (a table, query, file path or key pattern)."""

    @abc.abstractmethod
    async def write(self, df: pd.DataFrame, target: str, *, mode: WriteMode = "append") -> int:
        """Write `df` to `target`; returns rows written. Nothing half-written stays visible."""

    async def get_object(self, path: str) -> bytes:
        """Read one object (a model file) whole."""
        raise NotImplementedError(f"{self.connect_type} connections do not store objects")

    async def put_object(self, path: str, data: bytes) -> str:
        """Store one object atomically; returns its URI."""
        raise NotImplementedError(f"{self.connect_type} connections do not store objects")

    async def ping(self) -> None:  # noqa: B027 - optional hook
        """Check the store answers and the credentials work; raise a ConnectorError if not."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release sockets and threads."""

    async def __aenter__(self) -> Connector:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
