"""REDIS sink: rows become hashes, staged under hidden keys, renamed into place in one MULTI/EXEC.

`write(df)` encodes a batch as RESP with Arrow string kernels (`_redis_encode`, no Python object
per field) and pipelines, per row, `DEL stage`, `HSET stage field value ...`, `PEXPIRE stage ttl`
to the primary that owns the key. Staging keys are `<prefix>__atom_stage:<sink id>:<rest of the
key>` (GROUP: `{slot tag}__atom_stage:<sink id>:<key>`, in the final key's slot); reads skip them,
and they expire after `staging_ttl_s` (default one day), so a crashed writer leaves nothing
behind for long.

`commit()` first PERSISTs every staging key (proving none expired), then sends one
`MULTI ... EXEC`: UNLINK what the write replaces (replace: every key under the prefix; run key:
the members of the run set `<prefix>__atom_run:<run key>` an earlier sink left), RENAME each
staging key onto its final key (which drops fields the new row lacks: an upsert replaces the
whole hash), and rewrite the schema key and the run set. Redis runs the transaction without
interleaving any other command, so every other command, a MULTI of reads included, sees the
prefix wholly before or wholly after the commit. A pattern read that is under way while it
happens reads some SCAN batches before and some after, so it may return old and new rows side
by side (SCAN only promises keys present for the whole read). The server queues every command of
the transaction (roughly 150 bytes each) and then runs it in one go, about a microsecond per key
(one million keys: about a second without serving anyone else).

GROUP: Redis cannot run one transaction over several hash slots, so the commit is one MULTI/EXEC
per slot (atomic per slot, not across the prefix) and the schema key and run set follow in their
own. Put a hash tag in the prefix (`{orders}:`) to get one slot and full atomicity, at the price of
one node holding the whole prefix.

Values are stored as text: numbers in shortest round-trip form, booleans `true`/`false`,
timestamps ISO 8601, nested values as JSON; nulls are left out of the hash. The schema key
`<prefix>__atom_schema` maps each column to its Arrow type so reads restore the dtypes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from connectors._redis_client import MARK, RUN_INFIX, SCHEMA_SUFFIX, Topology, companion, glob_escape
from connectors._redis_decode import KEY_COLUMN
from connectors._redis_encode import Encoded, arrow_column, bulk, first_error, flat, joined, lit, text_column
from connectors._redis_resp import RedisSettings, RespConnection, pack, translate_reply_error
from connectors._redis_types import EMPTY_ROW_FIELD, type_name
from connectors.errors import ConnectorConfigError, RequestRejected

if TYPE_CHECKING:
    from connectors.base import WriteOptions

logger = logging.getLogger(__name__)

STAGE_MARK = f"{MARK}stage:".encode()
DEFAULT_TTL_S = 86_400
DEFAULT_BATCH_ROWS = 5_000
_ARGS_PER_COMMAND = 1_000


@dataclass
class SinkState:
    """What a sink staged so far, per node."""

    keys: dict[int, list[pa.Array]] = field(default_factory=dict)
    stage: dict[int, list[pa.Array]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    base: int = 0


class Writer:
    """The blocking half of a REDIS sink (runs in worker threads, one call at a time)."""

    def __init__(self, settings: RedisSettings, topo: Topology, target: str, options: WriteOptions) -> None:
        if not target:
            raise ConnectorConfigError(
                f"a Redis sink needs a key prefix such as 'orders:' as its target ({settings.where})"
            )
        self.settings = settings
        self.topo = topo
        self.target = target
        self.options = options
        self.prefix = target.encode()
        self.sid = uuid.uuid4().hex[:12]
        self.stage_kind = STAGE_MARK + self.sid.encode() + b":"
        conf = settings.conf
        self.ttl_ms = int(float(conf.get("staging_ttl_s", DEFAULT_TTL_S)) * 1000)
        self.batch_rows = max(1, int(conf.get("write_batch_rows", DEFAULT_BATCH_ROWS)))
        self.tag = (options.run_key or self.sid).encode()
        self.state = SinkState()
        self.conns: dict[int, RespConnection] = {}
        self.where = f"{settings.where} prefix {target}"

    # -- connections ---------------------------------------------------------------------

    def conn(self, node: int) -> RespConnection:
        conn = self.conns.get(node)
        if conn is None or conn.closed:
            conn = RespConnection(self.settings, self.topo.nodes[node], role="write").open()
            self.conns[node] = conn
        return conn

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()
        self.conns.clear()

    def run(self, node: int, payload: Sequence[memoryview | bytes], doing: str) -> bytes:
        """Send packed commands to a node and check no reply is an error."""
        conn = self.conn(node)
        echo, tail = conn.marker()
        conn.send([*payload, echo], doing)
        data = conn.recv_until(tail, doing)
        if data.startswith(b"-") or b"\r\n-" in data:
            message = first_error(data)
            if message is not None:
                raise translate_reply_error(message, conn.where, doing, self.target)
        return data

    # -- write ---------------------------------------------------------------------------

    def encode(self, df: pd.DataFrame) -> Encoded:
        """Keys, staging keys and RESP commands for a batch."""
        n = len(df)
        columns: dict[str, pa.Array] = {}
        for name in df.columns:
            if str(name) == KEY_COLUMN:
                continue
            column = arrow_column(df[name])
            self.state.types.setdefault(str(name), type_name(column.type))
            columns[str(name)] = text_column(column)
        keys, text = self._keys(columns, n)
        stage = self._stage_keys(keys, text)
        stage_bulk = bulk(stage)
        valid = np.zeros(n, np.int64)
        pieces: list[pa.Array | pa.Scalar] = []
        for name, values in columns.items():
            raw = name.encode()
            valid += values.is_valid().to_numpy(zero_copy_only=False)
            pieces.append(
                pc.binary_join_element_wise(lit(b"$%d\r\n%s\r\n" % (len(raw), raw)), bulk(values), lit(b""))
            )
        empty = valid == 0
        if empty.any():
            marker = pa.array([b"$0\r\n\r\n" if e else None for e in empty.tolist()], pa.binary())
            name = EMPTY_ROW_FIELD.encode()
            pieces.append(
                pc.binary_join_element_wise(lit(b"$%d\r\n%s\r\n" % (len(name), name)), marker, lit(b""))
            )
            valid += empty
        head = pa.array(2 + 2 * valid).cast(pa.string()).cast(pa.binary())
        ttl = str(self.ttl_ms).encode()
        payload = joined(
            [
                lit(b"*2\r\n$3\r\nDEL\r\n"),
                stage_bulk,
                lit(b"*"),
                head,
                lit(b"\r\n$4\r\nHSET\r\n"),
                stage_bulk,
                *pieces,
                lit(b"*3\r\n$7\r\nPEXPIRE\r\n"),
                stage_bulk,
                lit(b"$%d\r\n%s\r\n" % (len(ttl), ttl)),
            ]
        )
        return Encoded(keys, stage, payload)

    def _keys(self, columns: dict[str, pa.Array], n: int) -> tuple[pa.Array, pa.Array]:
        """Final keys, and the part after the prefix."""
        if self.options.key:
            parts = []
            for name in self.options.key:
                if name not in columns:
                    raise ConnectorConfigError(
                        f"key column {name!r} is not in the rows written to {self.where} "
                        f"(columns: {', '.join(columns)}): fix the sink's key"
                    )
                values = columns[name]
                if values.null_count:
                    raise RequestRejected(
                        f"{values.null_count} rows written to {self.where} have no value in key column "
                        f"{name!r}: fill it or pick another key"
                    )
                parts.append(values)
            text = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, lit(b":"))
        else:
            numbers = pa.array(np.arange(self.state.base, self.state.base + n)).cast(pa.string())
            text = pc.binary_join_element_wise(lit(self.tag + b":"), numbers.cast(pa.binary()), lit(b""))
        self.state.base += n
        return pc.binary_join_element_wise(lit(self.prefix), text, lit(b"")), text

    def _stage_keys(self, keys: pa.Array, text: pa.Array) -> pa.Array:
        """SINGLE: `<prefix>__atom_stage:<id>:<rest>` (ACL rules for the prefix cover it);
        GROUP: `{tag}__atom_stage:<id>:<key>` in the key's hash slot (RENAME needs it)."""
        if not self.topo.cluster:
            return pc.binary_join_element_wise(lit(self.prefix + self.stage_kind), text, lit(b""))
        return pa.array([companion(k, self.stage_kind, True) for k in keys.to_pylist()], pa.binary())

    def write(self, df: pd.DataFrame) -> None:
        """Stage a batch (chunks of `write_batch_rows` rows per round trip)."""
        for start in range(0, len(df), self.batch_rows):
            enc = self.encode(df.iloc[start : start + self.batch_rows])
            for node, rows in self._by_node(enc.keys):
                part = (
                    enc
                    if rows is None
                    else Encoded(*(a.take(rows) for a in (enc.keys, enc.stage, enc.payload)))
                )
                self.state.keys.setdefault(node, []).append(part.keys)  # first: abort must drop them
                self.state.stage.setdefault(node, []).append(part.stage)
                self.run(node, [flat(part.payload)], f"staging {len(part.keys)} rows")
        if not len(df):
            for name in df.columns:
                if str(name) != KEY_COLUMN:
                    self.state.types.setdefault(str(name), type_name(arrow_column(df[name]).type))

    def _by_node(self, keys: pa.Array) -> list[tuple[int, pa.Array | None]]:
        if not self.topo.cluster:
            return [(0, None)]
        nodes = np.array([self.topo.node_of(k) for k in keys.to_pylist()], np.int64)
        return [(int(n), pa.array(np.flatnonzero(nodes == n))) for n in np.unique(nodes)]

    # -- commit / abort ------------------------------------------------------------------

    def staged(self, node: int) -> tuple[pa.Array, pa.Array]:
        """This node's final and staging keys, each once (a key written twice keeps its last row)."""
        keys = pa.concat_arrays(self.state.keys[node])
        stage = pa.concat_arrays(self.state.stage[node])
        unique = pc.unique(keys)
        if len(unique) == len(keys):
            return keys, stage
        last = pc.index_in(unique, keys)  # first index per key; the staging key is the same for all
        return unique, stage.take(last)

    def commit(self) -> None:
        """PERSIST the staging keys, then rename them into place with the deletions and metadata."""
        staged = {node: self.staged(node) for node in self.state.keys}
        for node, (_, stage) in staged.items():
            self._persist(node, stage)
        old, metadata_keys = self._old_keys()
        if not self.topo.cluster:
            payload: list[memoryview | bytes] = [pack(b"MULTI")]
            payload += self._unlinks(old.get(0, []))
            if 0 in staged:
                payload.append(flat(self._renames(*staged[0])))
            payload += [command for _, command in self._metadata(metadata_keys)]
            payload.append(pack(b"EXEC"))
            self.run(0, payload, f"committing {self.target}")
            return
        self._commit_slots(staged, old)
        self._commit_metadata_slots(metadata_keys)

    def _persist(self, node: int, stage: pa.Array) -> None:
        for start in range(0, len(stage), self.batch_rows):
            part = stage.slice(start, self.batch_rows)
            data = self.run(
                node, [flat(joined([lit(b"*2\r\n$7\r\nPERSIST\r\n"), bulk(part)]))], "checking staged rows"
            )
            if data.count(b":1\r\n") != len(part):
                raise RequestRejected(
                    f"staged rows for {self.where} expired or were deleted before the commit "
                    f"(staging_ttl_s is {self.ttl_ms // 1000}s): write them again"
                )

    def _old_keys(self) -> tuple[dict[int, list[bytes]], list[bytes]]:
        """Keys the commit deletes, per node, and this prefix's metadata keys found (replace)."""
        old: dict[int, list[bytes]] = {}
        metadata: list[bytes] = []
        if self.options.mode == "replace":
            pattern = glob_escape(self.target).encode() + b"*"
            for node in range(len(self.topo.nodes)):
                for key in self._scan(node, pattern):
                    own = key[len(self.prefix) :]
                    if STAGE_MARK in own:
                        continue  # a sink's staging key (this one's, or one still writing)
                    if MARK.encode() in own:
                        metadata.append(key)
                    else:
                        old.setdefault(node, []).append(key)
        elif self.options.run_key:
            run_set = self.run_set
            node = self.topo.node_of(run_set)
            members = self.conn(node).execute(
                b"SMEMBERS", run_set, doing="reading the run set", target=self.target
            )
            for key in members:
                old.setdefault(self.topo.node_of(key), []).append(key)
        return old, metadata

    def _scan(self, node: int, pattern: bytes) -> list[bytes]:
        conn = self.conn(node)
        found: list[bytes] = []
        cursor = 0
        while True:
            cursor_b, keys = conn.execute(
                b"SCAN", cursor, b"MATCH", pattern, b"COUNT", 1000, doing="listing keys"
            )
            found += keys
            cursor = int(cursor_b)
            if not cursor:
                return found

    @property
    def run_set(self) -> bytes:
        return self.prefix + RUN_INFIX.encode() + (self.options.run_key or "").encode()

    @property
    def schema_key(self) -> bytes:
        return self.prefix + SCHEMA_SUFFIX.encode()

    def _unlinks(self, keys: list[bytes], one_slot: bool = False) -> list[bytes]:
        """UNLINK commands for `keys` (in a cluster, one per key unless they share a slot)."""
        if self.topo.cluster and not one_slot:
            return [pack(b"UNLINK", key) for key in keys]
        step = _ARGS_PER_COMMAND
        return [pack(b"UNLINK", *keys[i : i + step]) for i in range(0, len(keys), step)]

    def _renames(self, keys: pa.Array, stage: pa.Array) -> pa.Array:
        return joined([lit(b"*3\r\n$6\r\nRENAME\r\n"), bulk(stage), bulk(keys)])

    def _metadata(self, metadata_keys: list[bytes]) -> list[tuple[bytes, bytes]]:
        """(key, command) pairs that replace old metadata and record the schema and run set."""
        out = [(key, pack(b"UNLINK", key)) for key in metadata_keys]
        if self.state.types:
            if self.options.mode == "replace":
                out.append((self.schema_key, pack(b"DEL", self.schema_key)))
            fields = (x for kv in self.state.types.items() for x in kv)
            out.append((self.schema_key, pack(b"HSET", self.schema_key, *fields)))
        if self.options.run_key:
            out.append((self.run_set, pack(b"DEL", self.run_set)))
            keys = [
                k
                for n in self.state.keys
                for k in pc.unique(pa.concat_arrays(self.state.keys[n])).to_pylist()
            ]
            for i in range(0, len(keys), _ARGS_PER_COMMAND):
                out.append((self.run_set, pack(b"SADD", self.run_set, *keys[i : i + _ARGS_PER_COMMAND])))
        return out

    def _commit_metadata_slots(self, metadata_keys: list[bytes]) -> None:
        """GROUP: one MULTI/EXEC per metadata key's slot, on its node."""
        from redis.crc import key_slot  # deferred: only cluster commits need slots

        by_slot: dict[int, list[bytes]] = {}
        for key, command in self._metadata(metadata_keys):
            by_slot.setdefault(key_slot(key), []).append(command)
        by_node: dict[int, list[bytes]] = {}
        for slot, commands in by_slot.items():
            node = int(self.topo.owner[slot]) if self.topo.owner is not None else 0
            by_node.setdefault(node, []).extend([pack(b"MULTI"), *commands, pack(b"EXEC")])
        for node, payload in by_node.items():
            self.run(node, list(payload), f"updating the schema and run set of {self.target}")

    def _commit_slots(
        self, staged: dict[int, tuple[pa.Array, pa.Array]], old: dict[int, list[bytes]]
    ) -> None:
        from redis.crc import key_slot  # deferred: only cluster commits need slots

        for node in sorted(set(staged) | set(old)):
            keys, stage = staged.get(node, (pa.array([], pa.binary()), pa.array([], pa.binary())))
            renames = self._renames(keys, stage) if len(keys) else pa.array([], pa.binary())
            slots = np.array([key_slot(k) for k in keys.to_pylist()], np.int64)
            gone: dict[int, list[bytes]] = {}
            for key in old.get(node, []):
                gone.setdefault(key_slot(key), []).append(key)
            order = np.argsort(slots, kind="stable")
            sorted_slots = slots[order]
            payload: list[memoryview | bytes] = []
            for slot in sorted(set(sorted_slots.tolist()) | set(gone)):
                lo, hi = np.searchsorted(sorted_slots, [slot, slot + 1])
                payload.append(pack(b"MULTI"))
                payload += self._unlinks(gone.get(slot, []), one_slot=True)
                if hi > lo:
                    payload.append(flat(renames.take(pa.array(order[lo:hi]))))
                payload.append(pack(b"EXEC"))
            if payload:
                self.run(node, payload, f"committing {self.target}")

    def abort(self) -> None:
        """Delete every staging key this sink wrote."""
        for node, parts in self.state.stage.items():
            keys = pa.concat_arrays(parts).to_pylist()
            self.run(node, self._unlinks(keys), f"dropping staged rows of {self.target}")
        self.state = SinkState()
