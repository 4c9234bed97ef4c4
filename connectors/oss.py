"""ALIYUNOSS connector: an Aliyun OSS bucket through the oss2 SDK, behind threads.

Everything but the SDK calls lives in `connectors._objects.ObjectStoreConnector` (reads of one
object or a prefix with resume, atomic sinks, objects, ranged downloads through the file cache);
this module builds the `oss2.Bucket` and maps oss2 errors to connector errors.

Connection record: `addr` is the endpoint (`https://oss-cn-hangzhou.aliyuncs.com`, a URL with
an IP, or a host with `port` and `sourceConf.scheme`; empty: the public endpoint of
`sourceConf.region`), `account` / `password` the AccessKey id / secret (empty: anonymous access
to a public bucket), `connectSpace` the bucket. sourceConf: `region` (default cn-hangzhou),
`auth_version` ("v1" default, "v2", or "v4", which signs with the region), `path_style`,
`connect_timeout` (10 s), `read_timeout` (60 s), `crc` (check CRC-64 of whole-object reads and
uploads, default true), plus the options `ObjectStoreConnector` lists. Multipart parts are at
least 100 KB (OSS's minimum). oss2 does not retry single requests; `connectors._paging` retries
reads and the file cache retries ranges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from connectors._object_errors import store_error
from connectors._objects import MiB, ObjectStoreConnector, resolve_endpoint
from connectors._options import conf_bool, conf_float
from connectors.base import ObjectInfo
from connectors.errors import ConnectorConfigError, ConnectorError, SourceUnavailable

logger = logging.getLogger(__name__)

CHUNK = MiB // 4
"""Bytes per read from a response: what a dropped connection can lose (the rest was handed on)."""
DEFAULT_REGION = "cn-hangzhou"


def _public_endpoint(region: str) -> str:
    return f"https://oss-{region or DEFAULT_REGION}.aliyuncs.com"


class OSSConnector(ObjectStoreConnector):
    """One Aliyun OSS bucket.

    Example:
        >>> cfg = ConnectionConfig("ALIYUNOSS", addr="https://oss-cn-beijing.aliyuncs.com", account="LTAI...",
        ...                        password="...", space="datasets", source_conf={"region": "cn-beijing"})
        >>> async with OSSConnector(cfg) as oss:
        ...     await oss.write(df, "results/scores.parquet", mode="replace")
    """

    connect_type: ClassVar[str] = "ALIYUNOSS"
    scheme: ClassVar[str] = "oss"
    min_part_size: ClassVar[int] = 100 * 1024

    def _make_client(self) -> Any:
        import oss2  # deferred for cost: the SDK loads only when an OSS connection is used

        conf = self.config.source_conf
        region = str(conf.get("region", "") or DEFAULT_REGION)
        endpoint = resolve_endpoint(self.config, _public_endpoint)
        version = str(conf.get("auth_version", "v1") or "v1").lower()
        account, secret = self.config.account, self.config.password
        auth: Any
        if not account:
            auth = oss2.AnonymousAuth()
        elif version == "v4":
            auth = oss2.AuthV4(account, secret)
        elif version == "v2":
            auth = oss2.AuthV2(account, secret)
        elif version == "v1":
            auth = oss2.Auth(account, secret)
        else:
            raise ConnectorConfigError(
                f"{self.config.describe()}: sourceConf auth_version={version!r}: valid values are v1, v2, v4"
            )
        conf, where = self.config.source_conf, self.config.describe()
        timeout = (
            conf_float(conf, "connect_timeout", 10, where=where),
            conf_float(conf, "read_timeout", 60, where=where),
        )
        return oss2.Bucket(
            auth,
            endpoint,
            self.bucket,
            connect_timeout=timeout,
            session=oss2.Session(pool_size=self.max_workers + 16),
            region=region,
            is_path_style=conf_bool(conf, "path_style", False, where=where),
            enable_crc=conf_bool(conf, "crc", True, where=where),
        )

    def _close_client(self, client: Any) -> None:
        client.session.session.close()

    # -- primitives ------------------------------------------------------------------------

    def _head(self, key: str) -> ObjectInfo:
        import oss2  # deferred with the SDK

        try:
            r = self.client.head_object(key)
        except oss2.exceptions.OssError as exc:
            if exc.status > 0 and not exc.code:  # no x-oss-err header: ask once more for the code
                self.client.get_object(key, byte_range=(0, 0)).close()
            raise
        return ObjectInfo(
            path=key,
            size=int(r.content_length or 0),
            etag=str(r.etag or "").strip('"'),
            modified=float(r.last_modified or 0),
        )

    def _list_page(self, prefix: str, token: str | None, limit: int) -> tuple[list[ObjectInfo], str | None]:
        r = self.client.list_objects_v2(prefix=prefix, continuation_token=token or "", max_keys=limit)
        infos = [
            ObjectInfo(
                path=o.key,
                size=int(o.size),
                etag=str(o.etag or "").strip('"'),
                modified=float(o.last_modified or 0),
            )
            for o in r.object_list
        ]
        return infos, (r.next_continuation_token if r.is_truncated else None)

    def _get_into(
        self, key: str, start: int, end: int | None, write: Callable[[bytes], None], if_match: str = ""
    ) -> None:
        import oss2  # deferred with the SDK

        headers = {"If-Match": f'"{if_match}"'} if if_match else {}
        whole = not start and end is None
        if whole:
            result = self.client.get_object(key, headers=headers)
        else:
            if end is not None and end <= start:
                return
            last = None if end is None else end - 1
            headers["x-oss-range-behavior"] = "standard"
            result = self.client.get_object(key, byte_range=(start, last), headers=headers)
        try:
            while True:
                chunk = result.read(CHUNK)
                if not chunk:
                    break
                write(chunk)
        finally:
            result.close()
        if whole and self.client.enable_crc and result.server_crc is not None:
            oss2.utils.check_crc("get", result.client_crc, result.server_crc, result.request_id)

    def _put(self, key: str, data: bytes) -> None:
        self.client.put_object(key, data)

    def _mp_create(self, key: str) -> str:
        return str(self.client.init_multipart_upload(key).upload_id)

    def _mp_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        return str(self.client.upload_part(key, upload_id, number, data).etag)

    def _mp_complete(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        import oss2  # deferred with the SDK

        self.client.complete_multipart_upload(
            key, upload_id, [oss2.models.PartInfo(n, etag) for n, etag in parts]
        )

    def _mp_abort(self, key: str, upload_id: str) -> None:
        self.client.abort_multipart_upload(key, upload_id)

    def _delete(self, key: str) -> None:
        self.client.delete_object(key)

    def _ping(self) -> None:
        self.client.list_objects_v2(max_keys=1)

    # -- errors ----------------------------------------------------------------------------

    def _translate(self, exc: Exception, key: str, doing: str) -> ConnectorError | None:
        import oss2  # deferred with the SDK
        import requests  # deferred: oss2's transport

        errors = oss2.exceptions
        if isinstance(exc, errors.RequestError):
            detail = str(getattr(exc, "exception", exc)).splitlines()[0]
            return SourceUnavailable(
                f"{self.where(key)}: connection failed while {doing} ({detail[:200]}); "
                "check the endpoint or retry",
                key=key,
            )
        if isinstance(exc, errors.InconsistentError):
            return SourceUnavailable(
                f"{self.where(key)}: CRC-64 mismatch while {doing} (the transfer was corrupted); retry",
                key=key,
            )
        if isinstance(exc, errors.ClientError):
            detail = str(exc.body).removeprefix("ClientError: ").splitlines()[0]
            return ConnectorConfigError(
                f"{self.config.describe()}: oss2 refused the settings ({detail}): "
                "check the bucket name (connectSpace) and the endpoint (addr)"
            )
        if isinstance(exc, errors.OssError):
            return store_error(self, str(exc.code or ""), int(exc.status), key, doing, str(exc.message or ""))
        if isinstance(exc, requests.RequestException):
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return SourceUnavailable(
                f"{self.where(key)}: connection dropped while {doing} ({detail[:200]}); retry", key=key
            )
        return None
