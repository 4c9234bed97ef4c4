"""Settings of the MYSQL connector: `source_conf` and `ReadOptions` checked once into typed values.

`source_conf` keys (all optional):

| key              | default | meaning                                                                |
|------------------|---------|------------------------------------------------------------------------|
| engine           | "auto"  | "connectorx" (bulk), "pymysql", or "auto": connectorx when installed   |
|                  |         | and every column is one it decodes exactly                             |
| partitions       | 2       | key ranges fetched at once per page (integer keys, connectorx)         |
| decimal          | "arrow" | DECIMAL as ArrowDtype decimals, "float" (float64), "object" (Decimal)  |
| connect_timeout  | 5       | seconds                                                                |
| write_batch_rows | 50000   | rows per staging round trip of a sink                                  |

unix_socket, charset, read_timeout, write_timeout, init_command and ssl go to the drivers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors._mysql_types import DECIMAL_MODES, DecimalMode
from connectors._options import conf_choice, conf_int
from connectors.base import ReadOptions

DEFAULT_PAGE_ROWS = 100_000
"""Rows per page when `paginate_read_num` is 0: measured best on a 1M x 10 table (see benchmarks)."""
DEFAULT_FETCH_ROWS = 10_000
"""Rows per pymysql fetch within a page when `connect_read_num` is 0."""
DEFAULT_PARTITIONS = 2
"""Key ranges fetched at once per page."""
WRITE_BATCH_ROWS = 50_000
"""Rows a sink stages per round trip (split further into statements under max_allowed_packet)."""
ENGINES: tuple[str, ...] = ("auto", "connectorx", "pymysql")


@dataclass(frozen=True)
class ReadSettings:
    """The knobs of one read, resolved.

    Attributes:
        page_rows: rows per page.
        fetch_rows: rows per pymysql fetch.
        partitions: parallel key-range queries per page (connectorx, integer keys).
        engine: auto, connectorx or pymysql.
        decimals: how DECIMAL columns reach pandas.
        arrow: pages are Arrow tables.
        key: the paging key asked for (None: the table's primary key).
    """

    page_rows: int
    fetch_rows: int
    partitions: int
    engine: str
    decimals: DecimalMode
    arrow: bool
    key: str | None


@dataclass(frozen=True)
class ConnectorSettings:
    """The connection-wide knobs from `source_conf`."""

    engine: str
    partitions: int
    decimals: DecimalMode
    write_batch_rows: int

    @classmethod
    def from_conf(cls, conf: dict[str, Any]) -> ConnectorSettings:
        """Check `source_conf`.

        Raises:
            ConnectorConfigError: an unknown engine/decimal mode or a bad number.
        """
        decimals = conf_choice(conf, "decimal", "arrow", DECIMAL_MODES)
        return cls(
            engine=conf_choice(conf, "engine", "auto", ENGINES),
            partitions=conf_int(conf, "partitions", DEFAULT_PARTITIONS, minimum=1),
            decimals=decimals,  # type: ignore[arg-type]
            write_batch_rows=conf_int(conf, "write_batch_rows", WRITE_BATCH_ROWS, minimum=1),
        )

    def read(self, options: ReadOptions) -> ReadSettings:
        """The settings of one read with these options."""
        page_rows = options.paginate_read_num or DEFAULT_PAGE_ROWS
        return ReadSettings(
            page_rows=page_rows,
            fetch_rows=min(options.connect_read_num or DEFAULT_FETCH_ROWS, page_rows),
            partitions=self.partitions,
            engine=self.engine,
            decimals=self.decimals,
            arrow=options.arrow,
            key=options.key,
        )
