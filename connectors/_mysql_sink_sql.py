"""SQL of the MYSQL sink: what the target looks like, permission probes, and the statements of a commit.

Kept apart from `_mysql_sink` so the commit plan for each mode can be read (and tested) as plain
statements: see `apply_statements`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors._mysql_sql import quote_ident, split_table
from connectors.base import RUN_COLUMN, WriteOptions


@dataclass(frozen=True)
class TargetInfo:
    """The target table as the sink found it.

    Attributes:
        exists: the table exists (and the account can see it).
        columns: its columns in order.
        unique: column tuples of its PRIMARY and UNIQUE keys.
        triggers: it has triggers (a RENAME swap would leave them behind).
        foreign_keys: it references or is referenced by foreign keys.
        max_packet: the server's max_allowed_packet.
    """

    exists: bool
    columns: list[str] = field(default_factory=list)
    unique: list[tuple[str, ...]] = field(default_factory=list)
    triggers: bool = False
    foreign_keys: bool = False
    max_packet: int = 16 << 20

    @classmethod
    def load(cls, conn: Any, target: str, execute: Callable[[Any, str, Any], None]) -> TargetInfo:
        """Read the target's description from information_schema. Blocking."""
        schema, name = split_table(target)
        where = (schema, name)
        with conn.cursor() as cur:
            execute(cur, "SELECT @@max_allowed_packet", None)
            max_packet = int(cur.fetchone()[0])
            execute(
                cur,
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                where,
            )
            columns = [str(r[0]) for r in cur.fetchall()]
            if not columns:
                return cls(exists=False, max_packet=max_packet)
            execute(
                cur,
                "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
                "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s AND NON_UNIQUE = 0 "
                "ORDER BY INDEX_NAME, SEQ_IN_INDEX",
                where,
            )
            unique: dict[str, list[str]] = {}
            for index, column in cur.fetchall():
                unique.setdefault(str(index), []).append(str(column))
            execute(
                cur,
                "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = "
                "COALESCE(%s, DATABASE()) AND EVENT_OBJECT_TABLE = %s",
                where,
            )
            triggers = bool(cur.fetchone()[0])
            execute(
                cur,
                "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE "
                "(CONSTRAINT_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s) OR "
                "(UNIQUE_CONSTRAINT_SCHEMA = COALESCE(%s, DATABASE()) AND REFERENCED_TABLE_NAME = %s)",
                where + where,
            )
            foreign = bool(cur.fetchone()[0])
        return cls(True, columns, [tuple(c) for c in unique.values()], triggers, foreign, max_packet)

    def has_unique(self, key: Sequence[str]) -> bool:
        """Whether a PRIMARY or UNIQUE key covers exactly these columns."""
        return any(set(index) == set(key) for index in self.unique)


def probe_statements(
    table: str, columns: Sequence[str], options: WriteOptions, info: TargetInfo
) -> Iterator[str]:
    """Statements that change nothing but fail with a permission error if the write would."""
    cols = ", ".join(map(quote_ident, columns))
    if cols:
        yield f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {table} WHERE 1 = 0"
    if options.mode == "replace" or (options.run_key and RUN_COLUMN in info.columns):
        yield f"DELETE FROM {table} WHERE 1 = 0"
    if options.mode == "upsert" and options.key:
        k = quote_ident(options.key[0])
        yield f"UPDATE {table} SET {k} = {k} WHERE 1 = 0"


def upsert_suffix(columns: Sequence[str], key: Sequence[str]) -> str:
    """` ON DUPLICATE KEY UPDATE c = VALUES(c), ...` for the non-key columns."""
    rest = [c for c in columns if c not in key] or list(key[:1])
    return " ON DUPLICATE KEY UPDATE " + ", ".join(
        f"{quote_ident(c)} = VALUES({quote_ident(c)})" for c in rest
    )


@dataclass
class CommitPlan:
    """The statements of one commit.

    Attributes:
        rename: an atomic `RENAME TABLE` to try first (None: none).
        after: run once the rename succeeded (dropping the swapped-out table).
        before: DDL the transaction needs first (adding the run-key column).
        transaction: (statement, params) run in one transaction when there is no rename, or it
            was refused (a concurrent create, missing ALTER/DROP grants).
    """

    rename: str | None = None
    after: list[str] = field(default_factory=list)
    before: list[str] = field(default_factory=list)
    transaction: list[tuple[str, Any]] = field(default_factory=list)


def apply_statements(
    *,
    target: str,
    stage: str | None,
    columns: Sequence[str],
    options: WriteOptions,
    info: TargetInfo,
    old: str,
) -> CommitPlan:
    """What a commit runs, for the sink's mode, run key and what the target looked like."""
    table = quote_ident(target)
    run = quote_ident(RUN_COLUMN)
    run_key = options.run_key
    if stage is None:  # nothing written: replace empties the target, a run key drops that run's rows
        if options.mode == "replace":
            return CommitPlan(transaction=[(f"DELETE FROM {table}", None)])
        if run_key and RUN_COLUMN in info.columns:
            return CommitPlan(transaction=[(f"DELETE FROM {table} WHERE {run} = %s", (run_key,))])
        return CommitPlan()
    names = list(columns) + ([RUN_COLUMN] if run_key else [])
    cols = ", ".join(map(quote_ident, names))
    copy = f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage}"
    if options.mode == "upsert":
        copy += upsert_suffix(names, options.key)
    if not info.exists:
        return CommitPlan(rename=f"RENAME TABLE {stage} TO {table}", transaction=[(copy, None)])
    before = []
    if run_key and RUN_COLUMN not in info.columns:
        before.append(f"ALTER TABLE {table} ADD COLUMN {run} VARCHAR(128) NULL, ADD INDEX {run} ({run})")
    if options.mode == "replace":
        plan = CommitPlan(before=before, transaction=[(f"DELETE FROM {table}", None), (copy, None)])
        if not info.triggers and not info.foreign_keys:
            plan.rename = f"RENAME TABLE {table} TO {old}, {stage} TO {table}"
            plan.after = [f"DROP TABLE IF EXISTS {old}"]
        return plan
    transaction: list[tuple[str, Any]] = []
    if run_key:
        transaction.append((f"DELETE FROM {table} WHERE {run} = %s", (run_key,)))
    transaction.append((copy, None))
    return CommitPlan(before=before, transaction=transaction)
