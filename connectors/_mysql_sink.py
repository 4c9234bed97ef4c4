"""The MYSQL sink: rows staged in a private table, applied to the target in one step at commit.

Lifecycle of `MySQLSink` (all SQL on the connector's connection, in worker threads):

1. First `write()`: look at the target (columns, unique keys, triggers, foreign keys); for an
   existing target, check the account may write it with statements that change nothing
   (`INSERT ... SELECT ... WHERE 1=0`, `DELETE ... WHERE 1=0`, `UPDATE ... WHERE 1=0`), so a
   read-only account gets `PermissionDenied` before anything is created. Then create the stage
   `_atom_stage_<target>_<hex>`: `CREATE TABLE ... LIKE` the target, or from the DataFrame's
   dtypes (key columns -> PRIMARY KEY) when the target does not exist yet.
2. Every `write()`: batched multi-row INSERTs into the stage (rendered column-wise by Arrow).
3. `commit()`: a new target is the stage renamed (`RENAME TABLE`, atomic). Otherwise, in one
   transaction: `replace` deletes all rows, a run key deletes the rows of that run, then
   `INSERT ... SELECT` (upsert: `... ON DUPLICATE KEY UPDATE`) copies the stage in. A `replace`
   of a target without triggers or foreign keys swaps the stage in with one `RENAME TABLE`
   instead (no second copy of the rows). Then the stage is dropped.
4. `abort()` (or the connector closing, or the sink being garbage-collected unfinished) drops
   the stage; the target is untouched.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from typing import TYPE_CHECKING, Any

from connectors._mysql_insert import SAFE_CHARSETS, insert_statements, make_escape
from connectors._mysql_sink_sql import TargetInfo, apply_statements, probe_statements, upsert_suffix
from connectors._mysql_sql import create_table_sql, quote_ident, sibling_table
from connectors.base import RUN_COLUMN, Sink, WriteOptions
from connectors.errors import ConnectorConfigError, ConnectorError, RequestRejected

if TYPE_CHECKING:
    import pandas as pd

    from connectors.mysql import MySQLConnector

logger = logging.getLogger("connectors.mysql")

STAGE_PREFIX = "_atom_stage_"
OLD_PREFIX = "_atom_old_"


class MySQLSink(Sink):
    """A streaming, atomic write to one MySQL table (see the module docstring for the steps)."""

    def __init__(self, conn: MySQLConnector, target: str, options: WriteOptions) -> None:
        super().__init__(target, options)
        self._conn = conn
        self._hex = uuid.uuid4().hex[:8]
        self.stage: str | None = None
        self._info: TargetInfo | None = None
        self._columns: list[str] | None = None
        self._upsert = ""
        self._max_bytes = 1 << 20
        self._backslashes = True

    def __repr__(self) -> str:
        return (
            f"MySQLSink({self.target!r}, mode={self.options.mode!r}, rows={self.rows}, stage={self.stage!r})"
        )

    # -- writing ---------------------------------------------------------------------------

    async def write(self, batch: pd.DataFrame) -> None:
        """Stage `batch`; nothing is visible in the target before `commit()`.

        Raises:
            ConnectorConfigError: the sink is finished, or the batch's columns differ from the first's.
            PermissionDenied: the account may not write the target (before anything is created).
            RequestRejected: the server refused rows (type, constraint, unknown column).
        """
        if self._finished:
            raise ConnectorConfigError(f"the sink to {self.target} is already committed or aborted")
        frame = self._own_columns(batch)
        columns = [str(c) for c in frame.columns]
        if self._columns is None:
            await self._conn._call(
                lambda c: self._prepare(c, batch),
                f"preparing a write to {self.target}",
                self.target,
                retry_stale=True,  # it only looks, until its last statement creates the stage
            )
        elif columns != self._columns:
            raise ConnectorConfigError(
                f"batch columns ({', '.join(columns)}) differ from the first batch's "
                f"({', '.join(self._columns)}) in the write to {self.target}: "
                "give every batch the same columns"
            )
        if not len(batch):
            return
        step = self._conn.settings.write_batch_rows
        parts = [frame.iloc[start : start + step] for start in range(0, len(frame), step)]
        # the next slice is rendered (client CPU) while the server inserts this one
        rendering = asyncio.ensure_future(self._render(parts[0]))
        try:
            for i, part in enumerate(parts):
                statements = await rendering
                if i + 1 < len(parts):
                    rendering = asyncio.ensure_future(self._render(parts[i + 1]))
                await self._conn._call(
                    functools.partial(self._execute_all, statements=statements),
                    f"staging {len(part)} rows for {self.target}",
                    self.target,
                )
                self.rows += len(part)
        finally:
            if not rendering.done():
                rendering.cancel()
            elif not rendering.cancelled():
                rendering.exception()  # mark it retrieved: the error that ended the loop wins

    def _own_columns(self, batch: pd.DataFrame) -> pd.DataFrame:
        """The batch without a `_atom_run` column of its own when the sink sets the run key."""
        if not self.options.run_key:
            return batch
        keep = [i for i, c in enumerate(batch.columns) if str(c) != RUN_COLUMN]
        return batch if len(keep) == batch.shape[1] else batch.iloc[:, keep]

    async def _render(self, frame: pd.DataFrame) -> list[bytes]:
        assert self.stage is not None
        extra = (
            {RUN_COLUMN: make_escape(self._backslashes)(self.options.run_key)}
            if self.options.run_key
            else None
        )

        def render() -> list[bytes]:
            return list(
                insert_statements(
                    frame,
                    self.stage or "",
                    extra=extra,
                    suffix=self._upsert,
                    max_bytes=self._max_bytes,
                    backslashes=self._backslashes,
                    escape=make_escape(self._backslashes),
                )
            )

        return await asyncio.to_thread(render)

    def _execute_all(self, conn: Any, statements: list[bytes]) -> None:
        with conn.cursor() as cur:
            for statement in statements:
                logger.debug("SQL %s... [%d bytes]", statement[:80].decode(errors="replace"), len(statement))
                cur.execute(statement)

    # -- preparing -------------------------------------------------------------------------

    def _prepare(self, conn: Any, batch: pd.DataFrame) -> None:
        """Inspect the target, check permissions, create the stage. Blocking."""
        opts = self.options
        frame = self._own_columns(batch)
        columns = [str(c) for c in frame.columns]
        if len(set(columns)) != len(columns):
            raise ConnectorConfigError(f"the rows written to {self.target} have duplicate column names")
        missing = [k for k in opts.key if k not in columns]
        if missing:
            raise ConnectorConfigError(
                f"key {', '.join(missing)} is not a column of the rows written to {self.target}: "
                f"use one of {', '.join(columns)}"
            )
        info = TargetInfo.load(conn, self.target, self._conn._execute)
        charset = str(getattr(conn, "charset", "utf8mb4")).lower()
        if charset not in SAFE_CHARSETS:
            raise ConnectorConfigError(
                f"writes need a utf8mb4, utf8 or latin1 connection charset, not {charset!r}: "
                "fix source_conf charset"
            )
        from pymysql.constants import SERVER_STATUS

        self._backslashes = not conn.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES
        self._max_bytes = max(64 << 10, min(info.max_packet // 2, 4 << 20))
        table = quote_ident(self.target)
        if info.exists:
            unknown = [c for c in columns if c not in info.columns]
            if unknown:
                raise RequestRejected(
                    f"columns {', '.join(unknown)} are not in MySQL table {self.target} "
                    f"(it has {', '.join(info.columns)}): add them to the table or drop them from the rows"
                )
            if opts.mode == "upsert" and not info.has_unique(opts.key):
                raise RequestRejected(
                    f"MySQL table {self.target} has no PRIMARY or UNIQUE key on ({', '.join(opts.key)}), "
                    f"so upsert cannot match rows: add one (ALTER TABLE {table} ADD UNIQUE "
                    f"({', '.join(map(quote_ident, opts.key))})) or write with mode='append'"
                )
            for statement in probe_statements(table, columns, opts, info):
                self._conn._execute(conn.cursor(), statement, None)
        stage = sibling_table(self.target, STAGE_PREFIX, self._hex)
        if info.exists:
            ddl = [f"CREATE TABLE {stage} LIKE {table}"]
            if opts.run_key and RUN_COLUMN not in info.columns:
                run = quote_ident(RUN_COLUMN)
                ddl.append(f"ALTER TABLE {stage} ADD COLUMN {run} VARCHAR(128) NULL, ADD INDEX {run} ({run})")
        else:
            ddl = [create_table_sql(stage, frame, opts.key, run_column=RUN_COLUMN if opts.run_key else None)]
        with conn.cursor() as cur:
            self._conn._execute(cur, ddl[0], None)
            self.stage = stage
            self._conn._register_stage(self, stage)
            for statement in ddl[1:]:
                self._conn._execute(cur, statement, None)
        self._info = info
        self._columns = columns
        if opts.mode == "upsert":
            self._upsert = upsert_suffix(columns + ([RUN_COLUMN] if opts.run_key else []), opts.key)
        logger.debug("sink to %s staging in %s (%s)", self.target, stage, opts.mode)

    # -- finishing -------------------------------------------------------------------------

    async def commit(self) -> int:
        """Apply the staged rows to the target atomically; returns the rows written.

        Raises:
            RequestRejected: the server refused the rows (e.g. a duplicate key on append); the
                target is unchanged and the stage dropped.
        """
        self._finished = True
        try:
            await self._conn._call(self._apply, f"committing {self.rows} rows to {self.target}", self.target)
        finally:
            await self._drop_stage()
        logger.info("wrote %d rows to %s (%s)", self.rows, self.target, self.options.mode)
        return self.rows

    async def abort(self) -> None:
        """Drop the stage; the target stays as it was."""
        self._finished = True
        await self._drop_stage()

    def _apply(self, conn: Any) -> None:
        """Run the commit plan (see `apply_statements`). Blocking."""
        info = self._info or TargetInfo.load(conn, self.target, self._conn._execute)
        if not info.exists and self.stage is None:
            return  # nothing written to a table that does not exist: nothing to do
        plan = apply_statements(
            target=self.target,
            stage=self.stage,
            columns=self._columns or [],
            options=self.options,
            info=info,
            old=sibling_table(self.target, OLD_PREFIX, self._hex),
        )
        execute = self._conn._execute
        with conn.cursor() as cur:
            if plan.rename:
                try:
                    execute(cur, plan.rename, None)
                except Exception as exc:
                    if not plan.transaction:
                        raise
                    logger.info(
                        "%s: RENAME refused (%s); copying the rows in a transaction", self.target, exc
                    )
                else:
                    self._conn._unregister_stage(self.stage or "")
                    self.stage = None  # it is the target now
                    for statement in plan.after:
                        try:
                            execute(cur, statement, None)
                        except Exception as exc:  # the new rows are in place; only cleanup failed
                            logger.warning("%s: %s failed (%s): drop it by hand", self.target, statement, exc)
                    return
            for statement in plan.before:  # DDL commits on its own; the transaction needs it first
                execute(cur, statement, None)
            conn.begin()
            try:
                for statement, params in plan.transaction:
                    execute(cur, statement, params)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    async def _drop_stage(self) -> None:
        stage, self.stage = self.stage, None
        if stage is None:
            return
        self._conn._unregister_stage(stage)
        try:
            await self._conn._call(lambda c: drop_table(self._conn, c, stage), f"dropping {stage}", stage)
        except ConnectorError as exc:
            logger.warning("could not drop the staging table %s (%s): drop it by hand", stage, exc)


def drop_table(owner: MySQLConnector, conn: Any, table: str) -> None:
    """`DROP TABLE IF EXISTS table` (quoted name). Blocking."""
    with conn.cursor() as cur:
        owner._execute(cur, f"DROP TABLE IF EXISTS {table}", None)
