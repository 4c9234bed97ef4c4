"""FILE connector: local files, directory datasets and HTTP(S) URLs as DataFrames, and local objects.

A FILE connection's `addr` (or `source_conf["root"]`) is an optional base: a directory (its root
folder), or an `http(s)://` base URL. A target is a path relative to it, an absolute path or a
`file://` URI under it, or an `http(s)://` URL; a target ending in "/" is a directory dataset
(part files in name order, see `connectors._file_dataset`). Every local path (reads, sinks,
objects, datasets' part files) stays inside the root folder: `..`, absolute paths elsewhere and
symlinks pointing out are refused with `OutsideRoot` (see `connectors.file_root`; a connection
without a root folder is rooted at the working directory). The format comes from
`ReadOptions.data_format` or the extension (`connectors._formats`); pages are exact-size and
resumable (csv/jsonl by byte offset).

HTTP targets are read through the shared download cache (`connectors.cache`): parallel byte
ranges into a content-addressed local file that other readers (in this process or others)
share. `source_conf` keys for HTTP: `headers` (dict), `timeout`, and the cache's `cache_dir`,
`cache_max_bytes`, `cache_part_size`, `cache_parallel`; `account`/`password` become HTTP basic auth.

Every local write is atomic (temp file in the same directory, fsync, `os.replace`), so a reader
never sees half a file and a failed or aborted write leaves the old file as it was. Blocking
I/O runs in threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urljoin, urlparse

from connectors._atomic import bytes_atomically, copy_atomically
from connectors._file_dataset import DatasetSink, dataset_advance, dataset_pages
from connectors._file_objects import copy_inside, scan_objects, stat_inside
from connectors._file_sink import FileSink
from connectors._formats import detect_format, file_pages, format_advance, translate_errors
from connectors._options import conf_float
from connectors._paging import DEFAULT_PAGE_ROWS, PagedReader, resumable_pages
from connectors.base import ConnectionConfig, Connector, ObjectInfo, ReadOptions, Sink, WriteOptions
from connectors.errors import ConnectorConfigError, TargetNotFound
from connectors.file_root import FileRoot, read_inside

if TYPE_CHECKING:
    from connectors.cache import CachedFile, FileCache
    from connectors.http import HttpRangeSource

__all__ = ["FileConnector", "detect_format"]


def _file_uri_path(uri: str) -> str:
    """The local path of a `file://` URI (`file:///abs`, `file://localhost/abs`, `file://rel/x`)."""
    parsed = urlparse(uri)
    host = "" if parsed.netloc in ("", "localhost") else parsed.netloc
    return unquote(host + parsed.path)


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


class FileConnector(Connector):
    """Local files (and HTTP(S) URLs) through one optional base directory or base URL.

    Example:
        >>> conn = FileConnector(ConnectionConfig("FILE", addr="/data"))
        >>> async for df in conn.read("train.csv", ReadOptions(paginate_read_num=10_000)): ...
    """

    connect_type: ClassVar[str] = "FILE"

    def __init__(self, config: ConnectionConfig) -> None:
        """Open a FILE connection; no I/O happens until the first call.

        Args:
            config: `addr` or `source_conf["root"]` is the base directory or base URL ("" = none:
                local paths are taken from, and kept inside, the working directory).
        """
        super().__init__(config)
        root = config.addr or str(config.source_conf.get("root", "") or "")
        if root.startswith("file://"):
            root = _file_uri_path(root)
        self.base_url: str | None = None
        self.root: Path | None = None
        if _is_url(root):
            self.base_url = root if root.endswith("/") else root + "/"
        elif root:
            self.root = Path(root).expanduser()
        self._fence: FileRoot | None = None
        self._cache: FileCache | None = None
        self._own_cache = False
        self._pins: list[CachedFile] = []

    # -- paths -----------------------------------------------------------------------------------

    @property
    def file_root(self) -> FileRoot:
        """The folder every local path of this connection stays in (the base directory, else the cwd)."""
        if self._fence is None:
            self._fence = FileRoot(self.root)
        return self._fence

    def resolve(self, target: str, *, writable: bool = False) -> Path:
        """The local file a target names, resolved inside the root folder (see `locate`).

        Raises:
            ConnectorConfigError: the target is an HTTP(S) URL.
            OutsideRoot: the target leads outside the root folder.
        """
        location = self.locate(target, writable=writable)
        if isinstance(location, str):
            raise ConnectorConfigError(
                f"{self._display(location)} is an HTTP URL, not a local path: read it, or use a local target"
            )
        return location

    def locate(self, target: str, *, writable: bool = False) -> Path | str:
        """A local `Path` resolved inside the root folder, or the absolute URL (a `str`) of an HTTP target.

        Args:
            target: a path, `file://` URI or URL.
            writable: the path is written to (the root folder itself is refused).

        Raises:
            OutsideRoot: `..`, an absolute path or a symlink leads outside the root folder.
        """
        if not target:
            raise ConnectorConfigError("empty FILE target: give a file path or URL")
        if _is_url(target):
            return target
        if self.base_url is not None and not target.startswith(("/", "file://")):
            return urljoin(self.base_url, target)
        raw = _file_uri_path(target) if target.startswith("file://") else target
        return self.file_root.contain(Path(raw).expanduser(), shown=target, writable=writable)

    def _object_path(self, path: str, *, writable: bool = False) -> Path:
        """An object's local path, inside the root folder."""
        return self.resolve(path, writable=writable)

    # -- read ------------------------------------------------------------------------------------

    def read(self, target: str, options: ReadOptions | None = None) -> PagedReader:
        """Stream a file, a directory dataset or an HTTP(S) object as DataFrames (or Arrow tables).

        Args:
            target: a path relative to the base, an absolute path, a `file://` URI, an
                `http(s)://` URL, or a directory ending in "/" (a dataset of part files).
            options: read knobs; `paginate_read_num` is the page size; `resume_from` a cursor
                an earlier reader reported (csv/jsonl: byte offset + rows; others: rows).

        Returns:
            A `PagedReader`. A dropped source (I/O error, HTTP connection lost) is retried and
            the read resumes after the last page handed on.

        Raises:
            TargetNotFound: the file does not exist (raised on the first batch).
            BatchDecodeError: the file is not valid in its format.
            ConnectorConfigError: the format cannot be told.
        """
        options = options or ReadOptions()
        location = self.locate(target)
        page_rows = options.paginate_read_num or DEFAULT_PAGE_ROWS
        arrow = options.arrow
        if isinstance(location, str):
            fmt = detect_format(location, options.data_format)
            name = self._display(location)

            def open_pages(cursor: Any) -> AsyncIterator[Any]:
                return self._http_pages(str(location), fmt, page_rows, cursor, arrow)

            advance = format_advance(fmt)
        elif target.endswith("/"):
            fmt = detect_format(location, options.data_format)
            name = f"{location}/"

            fence = self.file_root

            def open_pages(cursor: Any) -> AsyncIterator[Any]:
                return dataset_pages(Path(location), fmt, page_rows, cursor, arrow, root=fence)

            advance = dataset_advance
        else:
            fmt = detect_format(location, options.data_format)
            name = str(location)

            def open_pages(cursor: Any) -> AsyncIterator[Any]:
                return self._local_pages(Path(location), fmt, page_rows, cursor, arrow)

            advance = format_advance(fmt)
        pages = resumable_pages(
            open_pages, cursor=options.resume_from, advance=advance, options=options, name=name
        )
        return PagedReader(pages, options, advance=advance, name=name)

    async def _local_pages(
        self, path: Path, fmt: str, page_rows: int, cursor: Any, arrow: bool
    ) -> AsyncIterator[Any]:
        await asyncio.to_thread(self.file_root.check, path)  # again at each (re)open: links swapped in
        is_dir = await asyncio.to_thread(path.is_dir)
        if is_dir:
            raise ConnectorConfigError(
                f"{path} is a directory: end the target with / to read it as a dataset of part files",
                path=str(path),
            )
        async for page in file_pages(path, fmt, page_rows=page_rows, cursor=cursor, arrow=arrow):
            yield page

    async def _http_pages(
        self, url: str, fmt: str, page_rows: int, cursor: Any, arrow: bool
    ) -> AsyncIterator[Any]:
        async with await self._fetch(url) as cached:
            pages = file_pages(
                cached.path, fmt, page_rows=page_rows, cursor=cursor, arrow=arrow, name=cached.uri
            )
            async for page in pages:
                yield page

    # -- HTTP --------------------------------------------------------------------------------------

    @property
    def cache(self) -> FileCache:
        """The download cache HTTP reads go through (`connectors.cache.cache_for` the source_conf)."""
        if self._cache is None:
            from connectors.cache import cache_for  # deferred: only HTTP targets need it

            self._cache, self._own_cache = cache_for(self.config.source_conf, self.config.describe())
        return self._cache

    async def _fetch(self, url: str) -> CachedFile:
        """The cache's pinned copy of an HTTP(S) object (downloaded now unless already there)."""
        source = self._http_source(url)
        try:
            return await self.cache.fetch(source)
        finally:
            await asyncio.to_thread(source.close)

    def _http_source(self, url: str) -> HttpRangeSource:
        from connectors.http import HttpRangeSource  # deferred: only HTTP targets need it

        conf = self.config.source_conf
        return HttpRangeSource(
            url,
            headers=dict(conf.get("headers") or {}),
            auth=(self.config.account, self.config.password) if self.config.account else None,
            timeout=conf_float(conf, "timeout", 30.0, where=self.config.describe()),
        )

    def _display(self, url: str) -> str:
        from connectors.http import display_url  # deferred: only HTTP targets need it

        return display_url(url)

    def _refuse_http(self, location: Path | str, doing: str) -> Path:
        if isinstance(location, str):
            raise ConnectorConfigError(
                f"cannot {doing} {self._display(location)}: FILE connections only read HTTP(S) URLs; "
                "write to a local path or an object store (S3/OSS)"
            )
        return location

    # -- write -----------------------------------------------------------------------------------

    @classmethod
    def run_keyed_by_default(cls, target: str) -> bool:
        """Only datasets (targets ending in "/"): a run's rows go to a part named after it."""
        return target.endswith("/")

    def sink(self, target: str, options: WriteOptions | None = None) -> Sink:
        """A streaming, atomic writer to a file or directory dataset (see `connectors._file_sink`).

        Args:
            target: the file (parent directories are created), or a directory ending in "/".
            options: mode append/replace/upsert, key columns, run key, data format.

        Raises:
            ConnectorConfigError: an HTTP target, an unknown format, or upsert without a key.
        """
        options = options or WriteOptions()
        if options.mode == "upsert" and not options.key:
            raise ConnectorConfigError("mode upsert needs key columns: pass key='id' (or a list)")
        path = self._refuse_http(self.locate(target, writable=True), "write to")
        if target.endswith("/"):
            fmt = detect_format(path, options.data_format)
            return DatasetSink(path, target, options, fmt, root=self.file_root)
        return FileSink(path, target, options, detect_format(path, options.data_format))

    # -- objects -----------------------------------------------------------------------------------

    async def get_object(self, path: str) -> bytes:
        """Read one file under the base directory (or one HTTP(S) object) whole.

        Raises:
            TargetNotFound: the file does not exist.
        """
        location = self.locate(path)
        if isinstance(location, str):
            async with await self._fetch(location) as cached:
                return await asyncio.to_thread(cached.path.read_bytes)
        file = self._object_path(path)
        with translate_errors(file, "reading"):
            return await asyncio.to_thread(read_inside, file, self.file_root, shown=path)

    async def put_object(self, path: str, data: bytes) -> str:
        """Store `data` at `path` under the base directory, atomically; returns its `file://` URI."""
        self._refuse_http(self.locate(path, writable=True), "store")
        file = self._object_path(path, writable=True)

        with translate_errors(file, "writing"):
            await asyncio.to_thread(bytes_atomically, data, file)
        return file.absolute().as_uri()

    async def stat_object(self, path: str) -> ObjectInfo:
        """Size and version (mtime+size for files, ETag for HTTP) of one object."""
        location = self.locate(path)
        if isinstance(location, str):
            source = self._http_source(location)
            try:
                remote = await asyncio.to_thread(source.stat)
            finally:
                await asyncio.to_thread(source.close)
            return ObjectInfo(path, remote.size, remote.validator)
        file = self._object_path(path)
        with translate_errors(file, "reading"):
            return await asyncio.to_thread(stat_inside, file, self.file_root, path)

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every file under the base directory whose relative path starts with `prefix`, in path order."""
        if self.root is None:
            raise ConnectorConfigError("listing objects needs a FILE connection with a base directory (addr)")
        root = self.root
        with translate_errors(root, "reading"):
            objects = await asyncio.to_thread(scan_objects, root, prefix, self.file_root)
        for info in objects:
            yield info

    async def local_file(self, target: str) -> Path:
        """The file itself for local targets; for HTTP(S) the cache's copy, pinned until `aclose()`.

        Raises:
            TargetNotFound: no such file or URL.
        """
        location = self.locate(target)
        if isinstance(location, Path):
            if not await asyncio.to_thread(location.is_file):
                raise TargetNotFound(f"file {location} does not exist: check the path", path=str(location))
            return location
        cached = await self._fetch(location)
        self._pins.append(cached)
        return cached.path

    async def prefetch(self, target: str) -> None:
        """Download an HTTP(S) target into the cache ahead of its read (local files: nothing to do)."""
        location = self.locate(target)
        if isinstance(location, str) and not location.endswith("/"):
            (await self._fetch(location)).release()

    async def download(self, path: str, dest: str) -> str:
        """Copy one object (a file, or an HTTP(S) object through the cache) to `dest`, atomically."""
        location = self.locate(path)
        target = Path(dest)

        if isinstance(location, str):
            async with await self._fetch(location) as cached:
                with translate_errors(target, "writing"):
                    await asyncio.to_thread(copy_atomically, cached.path, target)
            return dest
        file = self._object_path(path)
        with translate_errors(file, "reading"):
            await asyncio.to_thread(copy_inside, file, self.file_root, path, target)
        return dest

    async def upload(self, src: str, path: str) -> str:
        """Copy the local file `src` to `path` under the base directory, atomically; returns its URI."""
        self._refuse_http(self.locate(path, writable=True), "upload to")
        file = self._object_path(path, writable=True)

        with translate_errors(file, "writing"):
            await asyncio.to_thread(copy_atomically, src, file)
        return file.absolute().as_uri()

    async def aclose(self) -> None:
        """Unpin `local_file` copies and release a cache opened for this connection; cached files stay."""
        pins, self._pins = self._pins, []
        for pin in pins:
            pin.release()
        cache, self._cache = self._cache, None
        if cache is not None and self._own_cache:
            cache.close()
        self._own_cache = False

    async def ping(self) -> None:
        """Check the base directory exists (or the base URL answers)."""
        if self.base_url is not None:
            from connectors.http import probe  # deferred: only HTTP bases need it

            conf = self.config.source_conf
            auth = (self.config.account, self.config.password) if self.config.account else None
            await asyncio.to_thread(probe, self.base_url, dict(conf.get("headers") or {}), auth)
            return
        if self.root is None:
            return
        root = self.root
        is_dir = await asyncio.to_thread(root.is_dir)
        if not is_dir:
            exists = await asyncio.to_thread(root.exists)
            if exists:
                raise ConnectorConfigError(f"FILE base {root} is not a directory: point addr at a directory")
            raise TargetNotFound(f"FILE base directory {root} does not exist: create it or fix addr")
