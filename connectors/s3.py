"""S3 connector: an S3 bucket (AWS, or any S3-compatible endpoint) through boto3, behind threads.

Everything but the SDK calls lives in `connectors._objects.ObjectStoreConnector`: reads of one
object or a prefix (csv, parquet, pickle, json, JSON lines) with resume, atomic sinks, objects,
ranged downloads through the file cache. This module builds the boto3 client and maps botocore
errors to connector errors.

Connection record: `addr` is the endpoint (a URL such as `http://127.0.0.1:9000`, or a host
with `port` and `sourceConf.scheme`; empty: AWS for `sourceConf.region`), `account` / `password`
the access key id / secret (empty: boto3's own credential chain), `connectSpace` the bucket.
sourceConf: `region` (default us-east-1), `addressing_style` (path for custom endpoints, else
auto), `session_token`, `connect_timeout` (10 s), `read_timeout` (60 s), `checksums`
("when_required", or "when_supported" for botocore's default flexible checksums), plus the
options `ObjectStoreConnector` lists. botocore's own retries are off: `connectors._paging` retries
reads (resuming from the cursor) and the file cache retries ranges.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from connectors._object_errors import store_error
from connectors._objects import MiB, ObjectStoreConnector, resolve_endpoint
from connectors._options import conf_float
from connectors.base import ObjectInfo
from connectors.errors import (
    AuthenticationFailed,
    ConnectorConfigError,
    ConnectorError,
    SourceUnavailable,
)

logger = logging.getLogger(__name__)

CHUNK = MiB // 4
"""Bytes per read from a response: what a dropped connection can lose (the rest was handed on)."""

_session: Any = None
_session_lock = threading.Lock()


def _shared_session() -> Any:
    """One boto3 session per process: it caches the service model (a new one costs ~0.1 s per client)."""
    global _session
    import boto3  # deferred for cost: the SDK loads only when an S3 connection is used

    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session


def _code(exc: Any) -> tuple[str, int]:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", "") or "")
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


class S3Connector(ObjectStoreConnector):
    """One S3 bucket.

    Example:
        >>> cfg = ConnectionConfig("S3", addr="http://127.0.0.1:9000", account="key", password="secret",
        ...                        space="datasets")
        >>> async with S3Connector(cfg) as s3:
        ...     async for df in s3.read("train/part-0.parquet"): ...
    """

    connect_type: ClassVar[str] = "S3"
    scheme: ClassVar[str] = "s3"
    min_part_size: ClassVar[int] = 5 * MiB

    def _make_client(self) -> Any:
        from botocore.config import Config  # deferred for cost: the SDK loads only when S3 is used

        conf, where = self.config.source_conf, self.config.describe()
        endpoint = resolve_endpoint(self.config, lambda region: None)
        checksums = str(conf.get("checksums", "when_required"))
        config = Config(
            region_name=str(conf.get("region", "") or "us-east-1"),
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=conf_float(conf, "connect_timeout", 10, where=where),
            read_timeout=conf_float(conf, "read_timeout", 60, where=where),
            max_pool_connections=self.max_workers + 16,
            s3={"addressing_style": str(conf.get("addressing_style", "path" if endpoint else "auto"))},
            request_checksum_calculation=checksums,
            response_checksum_validation=checksums,
        )
        keys: dict[str, Any] = {}
        if self.config.account:
            keys = {
                "aws_access_key_id": self.config.account,
                "aws_secret_access_key": self.config.password,
                "aws_session_token": conf.get("session_token") or None,
            }
        session = _shared_session()
        try:
            with _session_lock:  # a boto3 session is not safe for concurrent client creation
                return session.client("s3", endpoint_url=endpoint, config=config, **keys)
        except ValueError as exc:  # a malformed endpoint URL
            raise ConnectorConfigError(f"{self.config.describe()}: bad S3 endpoint: {exc}") from exc

    def _close_client(self, client: Any) -> None:
        client.close()

    # -- primitives ------------------------------------------------------------------------

    def _head(self, key: str) -> ObjectInfo:
        from botocore.exceptions import ClientError  # deferred with the SDK

        try:
            r = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc)[0].isdigit():  # HEAD answers carry no error body: ask once more for the code
                self.client.get_object(Bucket=self.bucket, Key=key, Range="bytes=0-0")["Body"].close()
            raise
        modified = r.get("LastModified")
        return ObjectInfo(
            path=key,
            size=int(r["ContentLength"]),
            etag=str(r.get("ETag", "")).strip('"'),
            modified=modified.timestamp() if modified else 0.0,
        )

    def _list_page(self, prefix: str, token: str | None, limit: int) -> tuple[list[ObjectInfo], str | None]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": limit}
        if token:
            args["ContinuationToken"] = token
        r = self.client.list_objects_v2(**args)
        infos = [
            ObjectInfo(
                path=item["Key"],
                size=int(item["Size"]),
                etag=str(item.get("ETag", "")).strip('"'),
                modified=item["LastModified"].timestamp() if item.get("LastModified") else 0.0,
            )
            for item in r.get("Contents", [])
        ]
        return infos, (r.get("NextContinuationToken") if r.get("IsTruncated") else None)

    def _get_into(
        self, key: str, start: int, end: int | None, write: Callable[[bytes], None], if_match: str = ""
    ) -> None:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if if_match:
            args["IfMatch"] = f'"{if_match}"'
        if start or end is not None:
            if end is not None and end <= start:
                return
            args["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        body = self.client.get_object(**args)["Body"]
        try:
            for chunk in body.iter_chunks(CHUNK):
                write(chunk)
        finally:
            body.close()

    def _put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def _mp_create(self, key: str) -> str:
        return str(self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"])

    def _mp_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        r = self.client.upload_part(
            Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )
        return str(r["ETag"])

    def _mp_complete(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]},
        )

    def _mp_abort(self, key: str, upload_id: str) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def _delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def _ping(self) -> None:
        self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)

    # -- errors ----------------------------------------------------------------------------

    def _translate(self, exc: Exception, key: str, doing: str) -> ConnectorError | None:
        from botocore import exceptions as bx  # deferred with the SDK

        if isinstance(exc, bx.ClientError):
            code, status = _code(exc)
            message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", "") or "")
            return store_error(self, code, status, key, doing, message)
        if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            return AuthenticationFailed(
                f"{self.config.describe()}: no S3 credentials: set the connection's account and password"
            )
        if isinstance(exc, (bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError)):
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return SourceUnavailable(
                f"{self.where(key)}: connection failed while {doing} ({detail}); check the endpoint or retry",
                key=key,
            )
        if isinstance(exc, bx.BotoCoreError):
            return ConnectorConfigError(f"{self.config.describe()}: S3 client set-up failed: {exc}")
        from urllib3.exceptions import HTTPError  # deferred: botocore's transport

        if isinstance(exc, HTTPError):
            return SourceUnavailable(
                f"{self.where(key)}: connection failed while {doing} ({exc}); retry", key=key
            )
        return None
