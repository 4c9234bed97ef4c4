"""Object-store byte movers: ranged reads for the file cache, local copies for parsing, multipart uploads.

- `ObjectRange` is one object as a `connectors.ranged.RangeSource`: the file cache calls its
  blocking `stat()` / `read_range()` from its own threads to fetch big objects in parallel ranges.
- `fetch_local` gives a local file holding an object: small ones with one GET into a temp file,
  large ones (or any, with `large=True`) through the shared file cache.
- `upload_file` stores a local file under a key atomically: one PUT when small, else a multipart
  upload whose parts go up a few at a time and which is aborted on any failure, so the key
  shows the old object (or nothing) until the upload completes.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from connectors._formats import COMPRESSION_SUFFIXES
from connectors.ranged import RangeSource, RemoteObject, WriteAt

if TYPE_CHECKING:
    from connectors._objects import ObjectStoreConnector

logger = logging.getLogger(__name__)

MAX_PARTS = 10_000
"""S3 and OSS both allow at most this many parts per upload."""

UPLOAD_PARALLEL = 4
"""Parts of one upload in flight at once (each holds `part_size` bytes of memory)."""


class ObjectRange(RangeSource):
    """One object of an object-store connector, read by byte range (blocking; for cache threads)."""

    def __init__(self, connector: ObjectStoreConnector, key: str) -> None:
        self.connector = connector
        self.key = key
        self.uri = connector.uri(key)
        self.validator = ""

    def stat(self) -> RemoteObject:
        info = self.connector.blocking("reading", self.key, self.connector._head, self.key)
        self.validator = info.etag
        return RemoteObject(uri=self.uri, size=info.size, validator=info.etag, ranges=True)

    def read_range(self, start: int, end: int, write_at: WriteAt) -> None:
        if end <= start:
            return
        pos = start

        def write(chunk: bytes) -> None:
            nonlocal pos
            write_at(pos, memoryview(chunk))
            pos += len(chunk)

        conn = self.connector
        conn.blocking("reading", self.key, conn._get_into, self.key, start, end, write, self.validator)


def _download(connector: ObjectStoreConnector, key: str, dest: Path) -> None:
    """One GET of the whole object into `dest` (blocking)."""
    with open(dest, "wb") as fh:
        connector.blocking("reading", key, connector._get_into, key, 0, None, fh.write)


def local_name(key: str) -> str:
    """A safe local file name for an object that keeps its suffixes (`.csv.gz` matters to parsers)."""
    name = PurePosixPath(key).name or "object"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[-120:]


@contextlib.asynccontextmanager
async def fetch_local(
    connector: ObjectStoreConnector, key: str, *, size: int | None = None, large: bool = False
) -> AsyncIterator[Path]:
    """A local file holding the object `key`, valid inside the block.

    Args:
        connector: the store.
        key: the object.
        size: its size when already known (else one HEAD/stat).
        large: go through the shared file cache whatever the size.

    Raises:
        TargetNotFound: no such object. SourceUnavailable: the connection dropped.
    """
    if size is None and not large:
        size = (await connector.stat_object(key)).size
    if large or (size or 0) > connector.direct_read_bytes:
        async with _cached(connector, key) as path:
            yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="atom-obj-"))
    try:
        dest = tmp / local_name(key)
        await connector.call("reading", key, _download, connector, key, dest)
        yield dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.asynccontextmanager
async def _cached(connector: ObjectStoreConnector, key: str) -> AsyncIterator[Path]:
    """The object through the file cache (parallel ranges; kept for later reads of the same version)."""
    cached = await connector.cache().fetch(connector.range_source(key))
    try:
        path = Path(cached.path)
        if PurePosixPath(key).suffix.lower() not in COMPRESSION_SUFFIXES:
            yield path
            return
        # parsers pick the decompression by suffix, and cache blobs have none: link it under the key's name
        link_dir = Path(tempfile.mkdtemp(prefix="atom-obj-"))
        try:
            link = link_dir / local_name(key)
            try:
                os.link(path, link)
            except OSError:
                os.symlink(path, link)
            yield link
        finally:
            shutil.rmtree(link_dir, ignore_errors=True)
    finally:
        await release(cached)


async def release(cached: Any) -> None:
    """Unpin a `CachedFile`."""
    released = cached.release()
    if inspect.isawaitable(released):
        await released


def upload_file(connector: ObjectStoreConnector, src: Path, key: str) -> None:
    """Store the local file `src` under `key` atomically (blocking; in a worker thread).

    Small files go up in one PUT. Larger ones use a multipart upload with parts of
    `connector.part_size` (grown so that at most 10 000 parts are needed), `UPLOAD_PARALLEL` at a
    time; any failure aborts the upload, so no part is left behind and the key is unchanged.
    """
    size = src.stat().st_size
    if size <= connector.multipart_threshold:
        connector._put(key, src.read_bytes())
        return
    part = max(connector.part_size, connector.min_part_size, -(-size // MAX_PARTS))
    upload_id = connector._mp_create(key)
    try:
        fd = os.open(src, os.O_RDONLY)
        try:

            def send(number: int) -> tuple[int, str]:
                data = os.pread(fd, part, (number - 1) * part)
                return number, connector._mp_part(key, upload_id, number, data)

            count = max(1, -(-size // part))
            with ThreadPoolExecutor(min(UPLOAD_PARALLEL, count), thread_name_prefix="atom-upload") as pool:
                parts = list(pool.map(send, range(1, count + 1)))
        finally:
            os.close(fd)
        connector._mp_complete(key, upload_id, parts)
    except BaseException:
        with contextlib.suppress(Exception):
            connector._mp_abort(key, upload_id)
        logger.info("aborted multipart upload of %s", connector.uri(key))
        raise
    logger.debug("uploaded %s in %d parts (%d bytes)", connector.uri(key), len(parts), size)
