"""REDIS bulk decoding and read bookkeeping, without a server: RESP buffers, types, dedup, cursors."""

from __future__ import annotations

import random

import hiredis
import numpy as np
import pyarrow as pa
import pytest

from connectors._redis_decode import KIND_EMPTY, KIND_ERROR, KIND_HASH, decode_hashes
from connectors._redis_resp import Endpoint, RedisSettings
from connectors._redis_scan import ScanPlan, ScanState
from connectors._redis_types import apply_types, parse_type
from connectors.base import ConnectionConfig
from connectors.errors import BatchDecodeError


def resp(reply: object) -> bytes:
    """RESP2 encoding of a hash reply (list of bytes), an error (str) or an empty hash (None)."""
    if reply is None:
        return b"*0\r\n"
    if isinstance(reply, str):
        return b"-" + reply.encode() + b"\r\n"
    assert isinstance(reply, list)
    return b"*%d\r\n" % len(reply) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in reply)


def expected(replies: list[object]) -> tuple[list[int], dict[str, list[object]]]:
    kinds = [KIND_ERROR if isinstance(r, str) else KIND_EMPTY if not r else KIND_HASH for r in replies]
    rows = [r for r in replies if isinstance(r, list) and r]
    names: list[str] = []
    for r in rows:
        for name in r[0::2]:
            text = name.decode("utf-8", "backslashreplace")
            if text not in names:
                names.append(text)
    columns = {
        n: [
            dict(zip((k.decode("utf-8", "backslashreplace") for k in r[0::2]), r[1::2], strict=True)).get(n)
            for r in rows
        ]
        for n in names
    }
    return kinds, columns


def check(replies: list[object]) -> bool:
    """Decode; True when the fast path took it (and got it right), False when it declined."""
    batch = decode_hashes(b"".join(resp(r) for r in replies), len(replies))
    if batch is None:
        return False
    kinds, columns = expected(replies)
    assert batch.kinds.tolist() == kinds
    assert {k: v.to_pylist() for k, v in batch.columns.items()} == columns
    assert list(batch.columns) == list(columns)
    return True


def test_uniform_hashes_take_the_fast_path() -> None:
    rows: list[object] = [
        [b"id", b"%d" % i, b"name", b"n%d" % i, b"score", b"%.2f" % (i / 3)] for i in range(500)
    ]
    assert check(rows)


def test_different_fields_orders_errors_and_empty_replies() -> None:
    replies: list[object] = [
        [b"a", b"1", b"b", b"2"],
        [b"b", b"3", b"a", b"4"],
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        None,
        [b"c", b"", b"a", b"\xff\x00"],
        [b"a", b"x" * 100_000],
    ]
    assert check(replies)


def test_values_holding_crlf_or_fake_headers_are_left_to_hiredis() -> None:
    assert not check([[b"v", b"a\r\nb"], [b"v", b"c"]])
    # a value that spells a whole fake reply still cannot fool the $len checks
    assert not check([[b"v", b"x\r\n*0\r\n$1\r\ny"], [b"v", b"z"]])
    assert check([[b"v", b"*2"], [b"v", b"$3"], [b"v", b"-ERR"], [b"v", b"\r"], [b"v", b"\n"]])


@pytest.mark.parametrize("seed", range(40))
def test_random_batches_decode_exactly_or_decline(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = [b"a", b"b", b"\r", b"\n", b"\r\n", b"*", b"$", b"-", b"1", "é".encode(), b"\xff", b":", b" "]
    replies: list[object] = []
    for _ in range(rng.randint(1, 60)):
        roll = rng.random()
        if roll < 0.05:
            replies.append("WRONGTYPE bad")
        elif roll < 0.08:
            replies.append(None)
        else:
            names = rng.sample([b"id", b"name", b"x", b"y", b"z", b"\xe2\x82\xac"], rng.randint(1, 5))
            replies.append(
                [x for n in names for x in (n, b"".join(rng.choices(alphabet, k=rng.randint(0, 12))))]
            )
    took_fast = check(replies)
    if not took_fast:  # the general parser must still read it
        reader = hiredis.Reader()
        reader.feed(b"".join(resp(r) for r in replies))
        assert len([reader.gets() for _ in replies]) == len(replies)


def test_empty_batch() -> None:
    batch = decode_hashes(b"", 0)
    assert batch is not None and batch.columns == {} and len(batch.kinds) == 0


# -- types ------------------------------------------------------------------------------------


def test_inference_widens_but_never_narrows() -> None:
    widest: dict[str, str] = {}
    first = apply_types(pa.table({"a": pa.array(["1", "2"]), "b": pa.array(["007", "8"])}), None, widest, "t")
    second = apply_types(
        pa.table({"a": pa.array(["1.5", None]), "b": pa.array(["9", "10"])}), None, widest, "t"
    )
    third = apply_types(pa.table({"a": pa.array(["3", "4"]), "b": pa.array(["1", "2"])}), None, widest, "t")
    assert first.schema.field("a").type == pa.int64() and first.schema.field("b").type == pa.string()
    assert second.schema.field("a").type == pa.float64()
    assert third.schema.field("a").type == pa.float64()  # once float, later pages stay float
    assert third.schema.field("b").type == pa.string()  # once text, later pages stay text


def test_schema_types_and_bad_values() -> None:
    schema = {
        "f": pa.bool_(),
        "t": parse_type("timestamp[us, tz=UTC]"),
        "c": parse_type("dictionary<values=string>"),
    }
    table = pa.table({"f": pa.array(["true", "False"]), "t": pa.array(["2024-01-02 03:04:05.000006Z", None])})
    typed = apply_types(table, schema, {}, "t")
    assert typed.column("f").to_pylist() == [True, False]
    assert typed.schema.field("t").type == pa.timestamp("us", tz="UTC")
    assert typed.schema.field("c").type == pa.dictionary(pa.int32(), pa.string())  # declared, absent: nulls
    with pytest.raises(BatchDecodeError, match="'f'.*bool"):
        apply_types(pa.table({"f": pa.array(["maybe"])}), schema, {}, "t")
    assert parse_type("something new") is None
    assert parse_type("decimal128(5, 2)") == pa.decimal128(5, 2)


def test_rows_without_fields_lose_the_marker_column() -> None:
    typed = apply_types(pa.table({"_key": pa.array(["k"]), "__atom_row": pa.array([""])}), None, {}, "t")
    assert typed.column_names == ["_key"]


# -- scan bookkeeping -------------------------------------------------------------------------


def plan(dedup: bool = True) -> ScanPlan:
    settings = RedisSettings.from_config(ConnectionConfig("REDIS", addr="127.0.0.1"))
    return ScanPlan(settings, [Endpoint("127.0.0.1", 6379)], b"p:*", "p:", 10, 4, True, None, dedup=dedup)


def batch(keys: list[bytes]) -> tuple[list[bytes], pa.Table, np.ndarray]:
    table = pa.table({"_key": pa.array([k.decode() for k in keys]), "v": pa.array(range(len(keys)))})
    return keys, table, np.arange(len(keys))


def test_keys_scan_returns_twice_are_dropped_and_cursors_stay_exact() -> None:
    state = ScanState(plan(), None)
    state.accept(0, 0, 11, 0, *batch([b"a", b"b", b"c"]))
    state.accept(0, 11, 12, 0, *batch([b"d", b"b", b"e"]))  # b again: the keyspace shrank mid-scan
    state.accept(0, 12, 0, 0, *batch([b"f"]))
    pages = state.pages(final=True)
    assert [p.column("_key").to_pylist() for p in pages] == [["a", "b", "c", "d"], ["e", "f"]]
    assert state.cursor_at(4) == {"node": "127.0.0.1:6379", "scan": 11, "skip": 2, "rows": 4}  # raw row 2: e
    assert state.cursor_at(3) == {"node": "127.0.0.1:6379", "scan": 11, "skip": 0, "rows": 3}
    assert state.cursor_at(6) == {"done": True, "rows": 6}


def test_reopen_forgets_what_comes_after_and_skip_carries_over() -> None:
    state = ScanState(plan(), None)
    state.accept(0, 0, 11, 0, *batch([b"a", b"b", b"c"]))
    state.accept(0, 11, 12, 0, *batch([b"d", b"e"]))
    state.pages(final=False)
    assert state.reopen(state.cursor_at(4)) == (0, 11, 1)
    assert b"d" not in (state.seen or set()) and b"a" in (state.seen or set())
    left = state.accept(0, 11, 12, 1, *batch([b"d"]))  # a smaller COUNT now: the batch is shorter
    assert left == 0 and state.total == 4
    assert state.accept(0, 12, 0, 0, *batch([b"e", b"f"])) == 0
    assert state.cursor_at(4) == {"node": "127.0.0.1:6379", "scan": 12, "skip": 0, "rows": 4}


def test_dedup_off_keeps_repeats() -> None:
    state = ScanState(plan(dedup=False), None)
    state.accept(0, 0, 11, 0, *batch([b"a"]))
    state.accept(0, 11, 0, 0, *batch([b"a"]))
    assert state.total == 2 and state.seen is None
