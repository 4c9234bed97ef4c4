"""The contract between remote objects (HTTP, S3, OSS) and the shared file cache: stat + byte ranges.

Each object store wraps one object as a `RangeSource`; `connectors.cache.FileCache` downloads it
in parallel byte ranges into content-addressed local files. The methods are blocking on purpose:
the cache calls them from its worker threads (sockets and SDKs release the GIL while they wait),
which keeps per-chunk overhead to a function call and lets one object use N connections.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

WriteAt = Callable[[int, memoryview], None]
"""`write_at(offset, chunk)`: store `chunk` at absolute byte `offset` of the object."""


@dataclass(frozen=True)
class RemoteObject:
    """What the cache needs to know before fetching an object.

    Attributes:
        uri: a stable, secret-free name (`https://host/path`, `s3://bucket/key`, `oss://bucket/key`).
        size: bytes.
        validator: ETag or Last-Modified (empty when the server gives neither); a changed
            validator means a changed object, so the cache fetches it again.
        ranges: the server honours byte ranges (if not, the cache uses one stream).
    """

    uri: str
    size: int
    validator: str = ""
    ranges: bool = True


class RangeSource(abc.ABC):
    """One remote object that can be read by byte range. Methods block; call them from threads."""

    uri: str
    """Secret-free identity of the object; the cache's key starts from it."""

    @abc.abstractmethod
    def stat(self) -> RemoteObject:
        """Size, validator and range support.

        Raises:
            TargetNotFound: no such object. AuthenticationFailed / PermissionDenied: credentials.
            SourceUnavailable: the server cannot be reached (the cache retries these).
        """

    @abc.abstractmethod
    def read_range(self, start: int, end: int, write_at: WriteAt) -> None:
        """Fetch bytes [start, end) and hand them to `write_at` in order, in chunks of any size.

        Raises:
            SourceUnavailable: the connection dropped; the bytes handed over so far are kept, and
                the cache retries from the first missing byte.
            Other ConnectorErrors as for `stat`.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release pooled connections."""
