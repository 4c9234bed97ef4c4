"""The cache's download engine: one object version into a partial file by parallel byte ranges.

The object is cut into parts (a whole number of 1 MiB hash blocks). `parallel` worker threads
take parts from a queue; each calls `RangeSource.read_range`, whose chunks land with
`os.pwrite` at their offset (socket reads, pwrite and sha256 all release the GIL, so N
connections really run in parallel). A dropped connection is retried from the first byte that
did not land, with backoff.

Content digest: the sha256 of the concatenated sha256 digests of the object's 1 MiB blocks
(`content_digest`; the same construction as Dropbox's content hash, with 1 MiB blocks). Each
worker hashes its part's blocks as they arrive, from memory, so hashing runs in parallel and
needs no second pass over the file. A finished part is appended to the `.state` file with its
block digests, so a download that is killed resumes with the missing parts only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from connectors.cache._store import Store, disk_full, is_enospc
from connectors.errors import ObjectChanged, SourceUnavailable
from connectors.ranged import RangeSource, RemoteObject

logger = logging.getLogger(__name__)

BLOCK = 1 << 20
"""Bytes per hash block of the content digest."""

Progress = Callable[[int, int], None]
"""`progress(bytes_done, total)`, called from worker threads as bytes land."""


class _Stopped(Exception):
    """Internal: another worker failed, or the cache is closing."""


def digest_of_blocks(blocks: Iterable[bytes]) -> str:
    """The content digest from the block digests, in order."""
    return hashlib.sha256(b"".join(blocks)).hexdigest()


def content_digest(data: bytes | Path) -> str:
    """The digest the cache files content under: sha256 over the sha256 of each 1 MiB block.

    Args:
        data: the bytes, or a file to read.
    """
    if isinstance(data, Path):
        blocks = []
        with open(data, "rb") as fh:
            while chunk := fh.read(BLOCK):
                blocks.append(hashlib.sha256(chunk).digest())
        return digest_of_blocks(blocks)
    view = memoryview(data)
    return digest_of_blocks(hashlib.sha256(view[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK))


def effective_part_size(size: int, part_size: int) -> int:
    """Bytes per part: whole hash blocks, and small enough that every worker gets several parts.

    Depends only on the object size and the configured part size, so a resumed download cuts
    the object the same way whatever `parallel` the resuming process uses.
    """
    want = min(part_size, max(BLOCK, size // 32))
    return max(BLOCK, want - want % BLOCK)


class PartialState:
    """The partial file of one object version and the record of which parts are complete."""

    def __init__(self, store: Store, key: str, remote: RemoteObject, part_size: int) -> None:
        self.path = store.partial / f"{key}.part"
        self.state = store.partial / f"{key}.state"
        self.remote = remote
        self.part_size = part_size
        self._lock = threading.Lock()
        self._fd_state: int | None = None

    def _header(self) -> str:
        r = self.remote
        fields = {"uri": r.uri, "size": r.size, "validator": r.validator, "part_size": self.part_size}
        return json.dumps(fields)

    def load(self) -> dict[int, list[bytes]]:
        """Open (or create) the partial file; returns the parts already complete and their block digests."""
        done: dict[int, list[bytes]] = {}
        try:
            lines = self.state.read_text(encoding="utf-8").splitlines()
            if lines and lines[0] == self._header() and self.path.stat().st_size == self.remote.size:
                for line in lines[1:]:
                    with contextlib.suppress(ValueError):
                        start, end, hexes = line.split()
                        blocks = [bytes.fromhex(h) for h in hexes.split(",")]
                        if len(blocks) == -(-(int(end) - int(start)) // BLOCK):
                            done[int(start)] = blocks
        except FileNotFoundError:
            pass
        if not done:
            self._remove()
            self._create()
        self._fd_state = os.open(self.state, os.O_WRONLY | os.O_APPEND)
        return done

    def _create(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, self.remote.size)  # sparse: blocks are allocated as the ranges land
        finally:
            os.close(fd)
        with open(self.state, "w", encoding="utf-8") as fh:
            fh.write(self._header() + "\n")

    def mark(self, start: int, end: int, blocks: list[bytes]) -> None:
        """Record one complete part (an O_APPEND write: whole lines even if the process dies)."""
        line = f"{start} {end} {','.join(b.hex() for b in blocks)}\n".encode()
        with self._lock:
            if self._fd_state is not None:
                os.write(self._fd_state, line)

    def close(self) -> None:
        with self._lock:
            if self._fd_state is not None:
                os.close(self._fd_state)
                self._fd_state = None

    def _remove(self) -> None:
        for path in (self.path, self.state):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def discard(self) -> None:
        """Forget this partial download (the object changed)."""
        self.close()
        self._remove()


class _BlockHasher:
    """sha256 of each `BLOCK` of one part, fed with the part's bytes in order."""

    def __init__(self) -> None:
        self.blocks: list[bytes] = []
        self._sha = hashlib.sha256()
        self._filled = 0

    def feed(self, view: memoryview) -> None:
        while len(view):
            take = view[: BLOCK - self._filled]
            self._sha.update(take)
            self._filled += len(take)
            view = view[len(take) :]
            if self._filled == BLOCK:
                self.blocks.append(self._sha.digest())
                self._sha = hashlib.sha256()
                self._filled = 0

    def finish(self) -> list[bytes]:
        if self._filled:
            self.blocks.append(self._sha.digest())
            self._filled = 0
        return self.blocks


class Download:
    """One object version into the store (blocking; run it in a thread holding the key's lock)."""

    def __init__(
        self,
        source: RangeSource,
        remote: RemoteObject,
        store: Store,
        key: str,
        *,
        part_size: int,
        parallel: int,
        retries: int = 5,
        backoff: float = 0.2,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.source = source
        self.remote = remote
        self.store = store
        self.key = key
        size = remote.size
        self.part_size = effective_part_size(size, part_size) if remote.ranges else max(size, 1)
        self.parallel = max(1, parallel if remote.ranges else 1)
        self.retries = retries
        self.backoff = backoff
        self.progress = progress
        self.stop = stop or threading.Event()
        self.fetched = 0  # bytes received in this run (resumed parts excluded)
        self._abort = threading.Event()
        self._done_bytes = 0
        self._count_lock = threading.Lock()
        self._blocks: dict[int, list[bytes]] = {}
        self._error: BaseException | None = None

    def run(self) -> str:
        """Download the missing parts; returns the content digest (the partial file is complete)."""
        size = self.remote.size
        state = PartialState(self.store, self.key, self.remote, self.part_size)
        try:
            self._blocks = state.load()
        except OSError as exc:
            if is_enospc(exc):
                raise disk_full(self.store.root, size, exc) from exc
            raise
        parts = [start for start in range(0, size, self.part_size) if start not in self._blocks]
        self._done_bytes = size - sum(min(self.part_size, size - s) for s in parts)
        self._check_space(size - self._done_bytes)
        if self._blocks:
            logger.info("resuming %s: %d of %d bytes already here", self.remote.uri, self._done_bytes, size)
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for start in parts:
            todo.put(start)
        fd = os.open(state.path, os.O_WRONLY)
        try:
            workers = [
                threading.Thread(target=self._worker, args=(todo, fd, state), name=f"atom-cache-{i}")
                for i in range(min(self.parallel, len(parts)))
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        finally:
            os.close(fd)
            state.close()
        if self._error is None and self.stop.is_set() and todo.qsize():
            self._error = SourceUnavailable(
                f"download of {self.remote.uri} stopped: the file cache was closed; fetch again to resume"
            )
        if self._error is not None:
            if isinstance(self._error, ObjectChanged):
                state.discard()
            raise self._error
        if self.progress is not None and not parts:
            self.progress(size, size)
        return digest_of_blocks(b for start in sorted(self._blocks) for b in self._blocks[start])

    def _check_space(self, missing: int) -> None:
        """Fail early, with the one-line disk-full error, when the missing bytes cannot fit."""
        try:
            st = os.statvfs(self.store.partial)
        except OSError:
            return
        if st.f_bavail * st.f_frsize < missing:
            raise disk_full(self.store.root, missing, OSError(28, "No space left on device"))

    def _worker(self, todo: queue.SimpleQueue[int], fd: int, state: PartialState) -> None:
        while not self._abort.is_set():
            try:
                start = todo.get_nowait()
            except queue.Empty:
                return
            end = min(start + self.part_size, self.remote.size)
            try:
                blocks = self._fetch_part(start, end, fd)
                with self._count_lock:
                    self._blocks[start] = blocks
                state.mark(start, end, blocks)
            except BaseException as exc:  # the first failure stops every worker
                if not isinstance(exc, _Stopped):
                    with self._count_lock:
                        self._error = self._error or exc
                self._abort.set()
                return

    def _fetch_part(self, start: int, end: int, fd: int) -> list[bytes]:
        pos = start
        failures = 0
        failed: list[BaseException] = []  # raised by write_at: wins over whatever the source made of it
        hasher = _BlockHasher()

        def write_at(offset: int, chunk: memoryview) -> None:
            try:
                land(offset, chunk)
            except BaseException as exc:
                failed.append(exc)
                raise

        def land(offset: int, chunk: memoryview) -> None:
            nonlocal pos
            if self._abort.is_set() or self.stop.is_set():
                raise _Stopped()
            if offset != pos or offset + len(chunk) > end:
                raise SourceUnavailable(f"{self.remote.uri}: range data out of place at byte {offset}")
            try:
                written = os.pwrite(fd, chunk, offset)
                while written < len(chunk):
                    written += os.pwrite(fd, chunk[written:], offset + written)
            except OSError as exc:
                if is_enospc(exc):
                    raise disk_full(self.store.root, self.remote.size, exc) from exc
                raise
            hasher.feed(chunk)
            pos += len(chunk)
            with self._count_lock:
                self._done_bytes += len(chunk)
                self.fetched += len(chunk)
                done = self._done_bytes
            if self.progress is not None:
                self.progress(done, self.remote.size)

        while pos < end:
            before = pos
            try:
                self.source.read_range(pos, end, write_at)
                if pos < end:
                    raise SourceUnavailable(f"{self.remote.uri}: range ended early at byte {pos} of {end}")
            except BaseException as exc:
                if failed and failed[0] is not exc:
                    raise failed[0] from exc
                if failed:
                    raise
                if isinstance(exc, ObjectChanged) or not isinstance(exc, SourceUnavailable):
                    raise
                failures = 0 if pos > before else failures + 1
                if failures > self.retries:
                    raise
                delay = exc.retry_after or min(5.0, self.backoff * 2 ** max(0, failures - 1))
                logger.info("%s: %s; retrying from byte %d in %.2fs", self.remote.uri, exc, pos, delay)
                if self.stop.wait(delay) or self._abort.is_set():
                    raise _Stopped() from exc
        return hasher.finish()
