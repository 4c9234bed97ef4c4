"""Operations of the OSS test server: buckets, listing, objects and multipart uploads, as OSS answers them.

`OSSOperations` is a mixin of the request handler in `tests/connectors/oss_protocol.py`: one
`_op_<Operation>(body, fault)` method per OSS API call, working on the in-memory state of the
`OSSServer` (`self.server.oss`). The data types of that state live here too.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import crcmod

MIN_PART_SIZE = 100 * 1024
"""OSS refuses multipart parts below this size (all but the last): EntityTooSmall."""


def crc64(data: bytes, init: int = 0) -> int:
    """OSS's CRC-64/ECMA-182 (reflected, as `x-oss-hash-crc64ecma` carries it)."""
    crc = crcmod.Crc(0x142F0E1EBA9EA3693, initCrc=init, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)
    crc.update(data)
    return int(crc.crcValue)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


@dataclass
class StoredObject:
    data: bytes
    etag: str
    modified: float
    content_type: str = "application/octet-stream"
    kind: str = "Normal"
    crc: int = 0


@dataclass
class Upload:
    key: str
    bucket: str
    parts: dict[int, tuple[bytes, str, float]] = field(default_factory=dict)


class OSSError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass
class Fault:
    op: str
    times: int
    status: int = 0
    code: str = ""
    drop_after: int = -1


class OSSOperations:
    """The operation handlers; mixed into the request handler, which supplies the attributes below."""

    server: Any
    headers: Any
    query: dict[str, str]
    bucket: str
    key: str
    command: str
    request_id: str
    connection: Any
    wfile: Any
    close_connection: bool

    if TYPE_CHECKING:  # supplied by the handler (BaseHTTPRequestHandler and OSSHandler)

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None: ...
        def send_response(self, code: int, message: str | None = None) -> None: ...
        def send_header(self, keyword: str, value: str) -> None: ...
        def end_headers(self) -> None: ...

    def _xml(self, root: str, fields: list[tuple[str, Any]]) -> bytes:
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>{render(fields)}</{root}>'.encode()

    # -- buckets ---------------------------------------------------------------------------

    def _objects(self) -> dict[str, StoredObject]:
        objects = self.server.oss.buckets.get(self.bucket)
        if objects is None:
            raise OSSError(
                404, "NoSuchBucket", "The specified bucket does not exist.", BucketName=self.bucket
            )
        return objects

    def _op_PutBucket(self, body: bytes, fault: Any) -> None:
        self.server.oss.create_bucket(self.bucket)
        self._send(200)

    def _op_HeadBucket(self, body: bytes, fault: Any) -> None:
        self._objects()
        self._send(200)

    def _list(self, v2: bool) -> None:
        q = self.query
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        max_keys = min(int(q.get("max-keys") or 100), 1000)
        url = q.get("encoding-type") == "url"
        if v2:
            token = q.get("continuation-token", "")
            after = base64.urlsafe_b64decode(token).decode() if token else q.get("start-after", "")
        else:
            after = q.get("marker", "")
        with self.server.oss.lock:
            keys = sorted(k for k in self._objects() if k.startswith(prefix) and k > after)
            objects = dict(self._objects())
        contents: list[tuple[str, Any]] = []
        prefixes: list[str] = []
        last, truncated = "", False
        for key in keys:
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            if delimiter and delimiter in key[len(prefix) :]:
                common = key[: len(prefix) + key[len(prefix) :].index(delimiter) + len(delimiter)]
                if common not in prefixes and common > after:
                    prefixes.append(common)
                last = max(last, common)
                continue
            obj, last = objects[key], key
            fields: list[tuple[str, Any]] = [
                ("Key", quote(key, safe="") if url else key),
                ("LastModified", _iso(obj.modified)),
                ("ETag", obj.etag),
                ("Type", obj.kind),
                ("Size", len(obj.data)),
                ("StorageClass", "Standard"),
            ]
            if not v2 or q.get("fetch-owner") == "true":
                fields.append(("Owner", [("ID", "1234"), ("DisplayName", "1234")]))
            contents.append(("Contents", fields))
        enc = (lambda s: quote(s, safe="")) if url else (lambda s: s)
        head: list[tuple[str, Any]] = [("Name", self.bucket), ("Prefix", enc(prefix))]
        if v2:
            head += [("MaxKeys", max_keys), ("Delimiter", enc(delimiter))]
            if q.get("start-after"):
                head.append(("StartAfter", enc(q["start-after"])))
            if q.get("continuation-token"):
                head.append(("ContinuationToken", q["continuation-token"]))
        else:
            head += [("Marker", enc(after)), ("MaxKeys", max_keys), ("Delimiter", enc(delimiter))]
        if url:
            head.append(("EncodingType", "url"))
        head.append(("IsTruncated", "true" if truncated else "false"))
        if truncated and v2:
            head.append(("NextContinuationToken", base64.urlsafe_b64encode(last.encode()).decode()))
        elif truncated:
            head.append(("NextMarker", enc(last)))
        if v2:
            head.append(("KeyCount", len(contents) + len(prefixes)))
        tail = [("CommonPrefixes", [("Prefix", enc(p))]) for p in prefixes]
        self._send(200, self._xml("ListBucketResult", head + contents + tail))

    def _op_ListObjects(self, body: bytes, fault: Any) -> None:
        self._list(v2=False)

    def _op_ListObjectsV2(self, body: bytes, fault: Any) -> None:
        self._list(v2=True)

    # -- objects ---------------------------------------------------------------------------

    def _object(self) -> StoredObject:
        obj = self._objects().get(self.key)
        if obj is None:
            raise OSSError(404, "NoSuchKey", "The specified key does not exist.", Key=self.key)
        return obj

    def _object_headers(self, obj: StoredObject) -> dict[str, str]:
        return {
            "ETag": obj.etag,
            "Last-Modified": email.utils.formatdate(obj.modified, usegmt=True),
            "Content-Type": obj.content_type,
            "x-oss-object-type": obj.kind,
            "x-oss-hash-crc64ecma": str(obj.crc),
            "Accept-Ranges": "bytes",
        }

    def _op_PutObject(self, body: bytes, fault: Any) -> None:
        md5 = self.headers.get("Content-MD5")
        if md5 and base64.b64encode(hashlib.md5(body).digest()).decode() != md5:
            raise OSSError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
        with self.server.oss.lock:
            objects = self._objects()
            obj = StoredObject(
                body, f'"{hashlib.md5(body).hexdigest().upper()}"', time.time(), crc=crc64(body)
            )
            obj.content_type = self.headers.get("Content-Type") or obj.content_type
            objects[self.key] = obj
        self._send(200, headers={"ETag": obj.etag, "x-oss-hash-crc64ecma": str(obj.crc)})

    def _op_HeadObject(self, body: bytes, fault: Any) -> None:
        obj = self._object()
        self.send_response(200)
        headers = {**self._object_headers(obj), "x-oss-request-id": self.request_id}
        headers["Content-Length"] = str(len(obj.data))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _op_GetObject(self, body: bytes, fault: Fault | None) -> None:
        obj = self._object()
        if_match = self.headers.get("If-Match")
        if if_match and if_match.strip('"') != obj.etag.strip('"'):
            raise OSSError(
                412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold."
            )
        data, status, size = obj.data, 200, len(obj.data)
        headers = self._object_headers(obj)
        spec = self.headers.get("Range", "")
        if spec.startswith("bytes=") and "," not in spec:
            first, _, last = spec[6:].partition("-")
            if first:
                start, end = int(first), min(int(last) if last else size - 1, size - 1)
            else:
                start, end = max(0, size - int(last)), size - 1
            if start <= end and start < size:
                data, status = obj.data[start : end + 1], 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            elif self.headers.get("x-oss-range-behavior") == "standard":
                raise OSSError(416, "InvalidRange", "The requested range cannot be satisfied.")
        if fault is not None and fault.drop_after >= 0:
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data[: fault.drop_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(status, data, headers)

    def _op_DeleteObject(self, body: bytes, fault: Any) -> None:
        with self.server.oss.lock:
            self._objects().pop(self.key, None)
        self._send(204)

    # -- multipart -------------------------------------------------------------------------

    def _upload(self) -> Upload:
        upload = self.server.oss.uploads.get(self.query["uploadId"])
        if upload is None or upload.key != self.key or upload.bucket != self.bucket:
            raise OSSError(
                404, "NoSuchUpload", "The specified upload does not exist.", UploadId=self.query["uploadId"]
            )
        return upload

    def _op_InitiateMultipartUpload(self, body: bytes, fault: Any) -> None:
        self._objects()
        upload_id = uuid.uuid4().hex.upper()
        with self.server.oss.lock:
            self.server.oss.uploads[upload_id] = Upload(self.key, self.bucket)
        fields = [("Bucket", self.bucket), ("Key", self.key), ("UploadId", upload_id)]
        self._send(200, self._xml("InitiateMultipartUploadResult", fields))

    def _op_UploadPart(self, body: bytes, fault: Any) -> None:
        number = int(self.query["partNumber"])
        if not 1 <= number <= 10_000:
            raise OSSError(400, "InvalidArgument", "Part number must be an integer between 1 and 10000.")
        etag = f'"{hashlib.md5(body).hexdigest().upper()}"'
        with self.server.oss.lock:
            self._upload().parts[number] = (body, etag, time.time())
        self._send(200, headers={"ETag": etag, "x-oss-hash-crc64ecma": str(crc64(body))})

    def _op_ListParts(self, body: bytes, fault: Any) -> None:
        upload = self._upload()
        marker = int(self.query.get("part-number-marker") or 0)
        max_parts = int(self.query.get("max-parts") or 1000)
        numbers = sorted(n for n in upload.parts if n > marker)
        page, truncated = numbers[:max_parts], len(numbers) > max_parts
        fields: list[tuple[str, Any]] = [
            ("Bucket", self.bucket),
            ("Key", self.key),
            ("UploadId", self.query["uploadId"]),
            ("PartNumberMarker", marker),
            ("NextPartNumberMarker", page[-1] if page else marker),
            ("MaxParts", max_parts),
            ("IsTruncated", "true" if truncated else "false"),
        ]
        for n in page:
            data, etag, modified = upload.parts[n]
            fields.append(
                (
                    "Part",
                    [
                        ("PartNumber", n),
                        ("LastModified", _iso(modified)),
                        ("ETag", etag),
                        ("HashCrc64ecma", crc64(data)),
                        ("Size", len(data)),
                    ],
                )
            )
        self._send(200, self._xml("ListPartsResult", fields))

    def _op_CompleteMultipartUpload(self, body: bytes, fault: Any) -> None:
        upload = self._upload()
        try:
            root = ElementTree.fromstring(body)
            wanted = [
                (int(p.findtext("PartNumber", "0")), p.findtext("ETag", "")) for p in root.findall("Part")
            ]
        except (ElementTree.ParseError, ValueError) as exc:
            raise OSSError(400, "MalformedXML", "The XML you provided was not well-formed.") from exc
        if not wanted or [n for n, _ in wanted] != sorted({n for n, _ in wanted}):
            raise OSSError(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
        chunks = []
        for i, (number, etag) in enumerate(wanted):
            part = upload.parts.get(number)
            if part is None or part[1].strip('"') != etag.strip('"'):
                raise OSSError(
                    400,
                    "InvalidPart",
                    "One or more of the specified parts could not be found.",
                    PartNumber=str(number),
                )
            if i < len(wanted) - 1 and len(part[0]) < MIN_PART_SIZE:
                raise OSSError(
                    400,
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed size.",
                    PartNumber=str(number),
                )
            chunks.append(part[0])
        data = b"".join(chunks)
        md5s = b"".join(hashlib.md5(c).digest() for c in chunks)
        etag = f'"{hashlib.md5(md5s).hexdigest().upper()}-{len(chunks)}"'
        with self.server.oss.lock:
            obj = StoredObject(data, etag, time.time(), kind="Multipart", crc=crc64(data))
            self._objects()[self.key] = obj
            self.server.oss.uploads.pop(self.query["uploadId"], None)
        fields = [
            ("Location", f"{self.bucket}/{self.key}"),
            ("Bucket", self.bucket),
            ("Key", self.key),
            ("ETag", etag),
        ]
        self._send(
            200,
            self._xml("CompleteMultipartUploadResult", fields),
            {"ETag": etag, "x-oss-hash-crc64ecma": str(obj.crc)},
        )

    def _op_AbortMultipartUpload(self, body: bytes, fault: Any) -> None:
        self._upload()
        with self.server.oss.lock:
            self.server.oss.uploads.pop(self.query["uploadId"], None)
        self._send(204)


def render(fields: list[tuple[str, Any]]) -> str:
    out = []
    for name, value in fields:
        inner = render(value) if isinstance(value, list) else escape(str(value))
        out.append(f"<{name}>{inner}</{name}>")
    return "".join(out)
