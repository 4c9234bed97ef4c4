"""The download cache against a real local HTTP server: ranges, sharing, resume, eviction, changes."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.cache import CacheDiskFull, FileCache, content_digest, default_cache
from connectors.errors import AuthenticationFailed, PermissionDenied, SourceUnavailable, TargetNotFound
from connectors.http import HttpRangeSource
from tests.connectors.http_server import FileServer

pytestmark = pytest.mark.http

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def sha(data: bytes) -> str:
    return content_digest(data)


def blob(root: Path, name: str, size: int, seed: int = 0) -> bytes:
    data = hashlib.shake_256(f"{name}-{seed}".encode()).digest(size) if size else b""
    (root / name).write_bytes(data)
    return data


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[FileCache]:
    c = FileCache(tmp_path / "cache", part_size=MiB, parallel=4, retry_backoff_s=0.01)
    yield c
    c.close()


def cli(*args: str, root: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "connectors.cache", "--root", str(root), *args]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def poll(predicate: object, *, seconds: float = 30.0) -> bool:
    """Wait (bounded) until predicate() holds; never asserts on time, only bounds the wait."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.01)
    return bool(predicate())  # type: ignore[operator]


async def test_parallel_ranges_give_identical_bytes(
    server: FileServer, served: Path, cache: FileCache
) -> None:
    data = blob(served, "big.bin", 9 * MiB + 12345)
    async with await cache.fetch(HttpRangeSource(server.url("big.bin"))) as cached:
        assert cached.digest == sha(data)
        assert cached.path.read_bytes() == data
        assert cached.path.name == sha(data)  # content-addressed
    assert server.count("big.bin") == 10  # one GET per 1 MiB part
    assert server.sent("big.bin") == len(data)
    assert cache.stats.downloads == 1


async def test_second_fetch_is_a_hit_and_same_bytes_are_stored_once(
    server: FileServer, served: Path, cache: FileCache
) -> None:
    data = blob(served, "a.bin", 3 * MiB)
    (served / "copy.bin").write_bytes(data)
    first = await cache.fetch(HttpRangeSource(server.url("a.bin")))
    again = await cache.fetch(HttpRangeSource(server.url("a.bin")))
    other = await cache.fetch(HttpRangeSource(server.url("copy.bin")))
    assert first.path == again.path == other.path
    assert cache.stats.hits == 1 and cache.stats.downloads == 2
    assert server.sent("a.bin") == len(data)
    [entry] = cache.entries()
    assert len(entry.uris) == 2 and entry.pinned
    for f in (first, again, other):
        f.release()
    assert not cache.entries()[0].pinned


async def test_concurrent_tasks_share_one_download(
    server: FileServer, served: Path, cache: FileCache
) -> None:
    data = blob(served, "shared.bin", 6 * MiB)
    results = await asyncio.gather(
        *[cache.fetch(HttpRangeSource(server.url("shared.bin"))) for _ in range(6)]
    )
    assert {r.digest for r in results} == {sha(data)}
    assert server.sent("shared.bin") == len(data)
    assert server.count("shared.bin") == 6  # the parts of one download
    for r in results:
        r.release()


async def test_readers_in_several_processes_cause_one_download(
    server: FileServer, served: Path, tmp_path: Path
) -> None:
    data = blob(served, "multi.bin", 4 * MiB)
    root = tmp_path / "shared-cache"
    server.gate = threading.Event()  # hold the download until every reader is waiting
    cache = FileCache(root, part_size=MiB, parallel=2)
    try:
        tasks = [asyncio.create_task(cache.fetch(HttpRangeSource(server.url("multi.bin")))) for _ in range(2)]
        procs = [
            cli("fetch", server.url("multi.bin"), "--quiet", "--part-size", "1", root=root) for _ in range(2)
        ]
        assert await poll(lambda: server.count("multi.bin", "HEAD") >= 4)  # everyone asked, the GETs wait
        server.gate.set()
        results = await asyncio.gather(*tasks)
        outputs = [await asyncio.to_thread(p.communicate, timeout=60) for p in procs]
    finally:
        server.gate.set()
        cache.close()
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all(sha(data) in out.decode() for out, _ in outputs)
    assert {r.digest for r in results} == {sha(data)}
    assert server.sent("multi.bin") == len(data)  # exactly one full download
    for r in results:
        r.release()


async def test_prefetch_then_fetch_downloads_once(server: FileServer, served: Path, cache: FileCache) -> None:
    data = blob(served, "pre.bin", 2 * MiB)
    task = cache.prefetch(HttpRangeSource(server.url("pre.bin")))
    async with await cache.fetch(HttpRangeSource(server.url("pre.bin"))) as cached:
        assert cached.digest == sha(data)
    await task
    assert server.sent("pre.bin") == len(data)


async def test_download_resumes_after_sigkill(served: Path, tmp_path: Path) -> None:
    data = blob(served, "resume.bin", 8 * MiB)
    root = tmp_path / "resume-cache"
    with FileServer(served, rate=2 * MiB) as slow:
        proc = cli(
            "fetch", slow.url("resume.bin"), "--quiet", "--part-size", "1", "--parallel", "2", root=root
        )
        states = root / "partial"

        def parts_done() -> int:
            return (
                sum(len(p.read_text().splitlines()) - 1 for p in states.glob("*.state"))
                if states.exists()
                else 0
            )

        try:
            assert await poll(lambda: parts_done() >= 3)
        finally:
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
        assert proc.returncode == -signal.SIGKILL
        done = parts_done()
        sent_before = slow.sent("resume.bin")
        assert 3 <= done < 8 and sent_before < len(data)
        assert await poll(lambda: slow.active == 0)  # the killed client's responses have ended
        slow.rate = None
        slow.reset_counters()
        cache = FileCache(root, part_size=MiB, parallel=2)
        try:
            async with await cache.fetch(HttpRangeSource(slow.url("resume.bin"))) as cached:
                assert cached.digest == sha(data)
                assert cached.path.read_bytes() == data
        finally:
            cache.close()
        assert cache.stats.resumed == 1
        assert slow.sent("resume.bin") <= len(data) - done * MiB  # only the missing parts
        assert slow.sent("resume.bin") == cache.stats.fetched_bytes
        assert not list(states.glob("*"))  # partial and state files are gone


async def test_dropped_connections_retry_from_the_first_missing_byte(
    server: FileServer, served: Path, cache: FileCache
) -> None:
    data = blob(served, "flaky.bin", 5 * MiB)
    server.drop_after("flaky.bin", 300_000, times=4)
    async with await cache.fetch(HttpRangeSource(server.url("flaky.bin"))) as cached:
        assert cached.digest == sha(data)
    assert server.sent("flaky.bin") == len(data)  # nothing fetched twice
    assert server.count("flaky.bin") == 5 + 4


async def test_a_range_that_keeps_dropping_gives_up(server: FileServer, served: Path, tmp_path: Path) -> None:
    blob(served, "dead.bin", 2 * MiB)
    server.drop_after("dead.bin", 0, times=100)
    cache = FileCache(tmp_path / "c", part_size=MiB, parallel=1, retries=2, retry_backoff_s=0.001)
    try:
        with pytest.raises(SourceUnavailable, match="dead.bin"):
            await cache.fetch(HttpRangeSource(server.url("dead.bin")))
    finally:
        cache.close()


async def test_changed_etag_fetches_again(server: FileServer, served: Path, cache: FileCache) -> None:
    old = blob(served, "model.bin", MiB + 7)
    server.etags["/model.bin"] = '"v1"'
    (await cache.fetch(HttpRangeSource(server.url("model.bin")))).release()
    new = blob(served, "model.bin", MiB + 7, seed=1)
    server.etags["/model.bin"] = '"v2"'
    async with await cache.fetch(HttpRangeSource(server.url("model.bin"))) as cached:
        assert cached.digest == sha(new) != sha(old)
    assert cache.stats.downloads == 2
    assert server.sent("model.bin") == len(old) + len(new)


async def test_object_changing_mid_download_restarts_cleanly(
    server: FileServer, served: Path, tmp_path: Path
) -> None:
    blob(served, "moving.bin", 4 * MiB)
    new = hashlib.shake_256(b"new").digest(4 * MiB)
    server.gate = threading.Event()
    cache = FileCache(tmp_path / "c", part_size=MiB, parallel=1)
    try:
        task = asyncio.create_task(cache.fetch(HttpRangeSource(server.url("moving.bin"))))
        assert await poll(lambda: server.count("moving.bin") >= 1)  # the first part is being served
        tmp = served / ".moving.tmp"
        tmp.write_bytes(new)
        os.replace(tmp, served / "moving.bin")  # a new version (new ETag) while part 1 is in flight
        server.gate.set()
        async with await task as cached:
            assert cached.digest == sha(new)
            assert cached.path.read_bytes() == new
    finally:
        server.gate.set()
        cache.close()


async def test_server_without_ranges_uses_one_stream(served: Path, cache: FileCache) -> None:
    data = blob(served, "plain.bin", 3 * MiB + 1)
    with FileServer(served, ranges=False) as plain:
        async with await cache.fetch(HttpRangeSource(plain.url("plain.bin"))) as cached:
            assert cached.digest == sha(data)
        assert plain.count("plain.bin") == 2  # a GET bytes=0-0 probe (answered 200 and cut) + one stream


async def test_redirect_is_followed(server: FileServer, served: Path, cache: FileCache) -> None:
    data = blob(served, "real.bin", MiB)
    server.redirects["/old.bin"] = server.url("real.bin")
    async with await cache.fetch(HttpRangeSource(server.url("old.bin"))) as cached:
        assert cached.digest == sha(data)


async def test_empty_object(server: FileServer, served: Path, cache: FileCache) -> None:
    blob(served, "empty.bin", 0)
    async with await cache.fetch(HttpRangeSource(server.url("empty.bin"))) as cached:
        assert cached.size == 0 and cached.digest == sha(b"") == hashlib.sha256(b"").hexdigest()


def test_content_digest_is_the_sha256_of_block_sha256s(tmp_path: Path) -> None:
    data = os.urandom(2 * MiB + 5)
    blocks = [hashlib.sha256(data[i : i + MiB]).digest() for i in range(0, len(data), MiB)]
    assert content_digest(data) == hashlib.sha256(b"".join(blocks)).hexdigest()
    (tmp_path / "f").write_bytes(data)
    assert content_digest(tmp_path / "f") == content_digest(data)


@pytest.mark.parametrize(
    ("status", "error"), [(401, AuthenticationFailed), (403, PermissionDenied), (404, TargetNotFound)]
)
async def test_http_errors_are_typed_and_secret_free(
    server: FileServer, cache: FileCache, status: int, error: type[Exception]
) -> None:
    if status != 404:
        server.status["/locked.bin"] = status
    url = server.url("locked.bin").replace("http://", "http://alice:hunter2@") + "?X-Amz-Signature=s3cr3t&v=1"
    with pytest.raises(error) as info:
        await cache.fetch(HttpRangeSource(url))
    message = str(info.value)
    assert "locked.bin" in message and "v=1" in message
    assert "hunter2" not in message and "s3cr3t" not in message and "\n" not in message


async def test_unreachable_server_is_source_unavailable(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "c", retries=1, retry_backoff_s=0.001)
    try:
        with pytest.raises(SourceUnavailable, match="cannot be reached"):
            await cache.fetch(HttpRangeSource("http://127.0.0.1:9/nothing.bin", timeout=2))
    finally:
        cache.close()


async def test_lru_eviction_respects_the_limit_and_pins(
    server: FileServer, served: Path, tmp_path: Path
) -> None:
    for name in "abcde":
        blob(served, f"{name}.bin", MiB)
    cache = FileCache(tmp_path / "lru", max_bytes=3 * MiB, part_size=MiB)

    async def get(name: str) -> Path:
        cached = await cache.fetch(HttpRangeSource(server.url(f"{name}.bin")))
        cached.release()
        return cached.path

    try:
        paths = {name: await get(name) for name in "abc"}
        for age, name in enumerate("bac"):  # set the LRU order explicitly: b oldest, then a, then c
            os.utime(paths[name], (1_000_000 + age, 1_000_000 + age))
        paths["d"] = await get("d")
        assert not paths["b"].exists() and paths["a"].exists()
        pinned = await cache.fetch(HttpRangeSource(server.url("a.bin")))  # a is in use ...
        os.utime(pinned.path, (1, 1))  # ... and the oldest
        paths["e"] = await get("e")
        assert pinned.path.exists()  # pinned: skipped
        assert not paths["c"].exists()  # the oldest unpinned one went instead
        assert sum(e.size for e in cache.entries()) <= 3 * MiB
        pinned.release()
    finally:
        cache.close()


async def test_object_larger_than_the_cache_is_refused(
    server: FileServer, served: Path, tmp_path: Path
) -> None:
    blob(served, "huge.bin", 2 * MiB)
    cache = FileCache(tmp_path / "tiny", max_bytes=MiB)
    try:
        with pytest.raises(CacheDiskFull, match="max_bytes"):
            await cache.fetch(HttpRangeSource(server.url("huge.bin")))
    finally:
        cache.close()


async def test_disk_full_names_the_cache_dir(
    server: FileServer, served: Path, cache: FileCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob(served, "full.bin", 2 * MiB)

    def no_space(fd: int, data: object, offset: int) -> int:  # a full disk cannot be made cheaply here
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", no_space)
    with pytest.raises(CacheDiskFull) as info:
        await cache.fetch(HttpRangeSource(server.url("full.bin")))
    assert str(cache.root) in str(info.value) and "free disk space" in str(info.value)


async def test_progress_reports_every_byte(server: FileServer, served: Path, cache: FileCache) -> None:
    data = blob(served, "prog.bin", 3 * MiB)
    seen: list[tuple[int, int]] = []
    async with await cache.fetch(
        HttpRangeSource(server.url("prog.bin")), progress=lambda d, t: seen.append((d, t))
    ):
        pass
    assert max(d for d, _ in seen) == len(data) and {t for _, t in seen} == {len(data)}


def test_cli_fetch_ls_prune(server: FileServer, served: Path, tmp_path: Path) -> None:
    data = blob(served, "cli.bin", MiB)
    root = tmp_path / "cli-cache"
    out, err = cli("fetch", server.url("cli.bin"), "--quiet", root=root).communicate(timeout=60)
    assert sha(data) in out.decode(), err.decode()
    listing = cli("ls", root=root).communicate(timeout=60)[0].decode()
    assert "1 entries" in listing and sha(data)[:12] in listing
    pruned = cli("prune", "--to", "0", root=root).communicate(timeout=60)[0].decode()
    assert f"freed {len(data):,} bytes" in pruned
    assert not FileCache(root).entries()


def test_default_cache_follows_the_given_root(tmp_path: Path) -> None:
    first = default_cache(tmp_path / "one")
    assert default_cache() is first
    second = default_cache(tmp_path / "two")
    assert second.root == tmp_path / "two" and default_cache() is second
