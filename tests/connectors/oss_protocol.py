"""Request handling of the OSS test server: HTTP plumbing, operation dispatch and signature checks.

`OSSHandler` reads a request (chunked bodies included), finds the bucket and key (path style, as
oss2 sends to an IP endpoint, or virtual-host style), names the OSS operation, checks the v1
(`OSS id:signature`, HMAC-SHA1) or v4 (`OSS4-HMAC-SHA256`) signature, applies the server's
injected faults, and calls the operation in `tests/connectors/oss_ops.py`. Errors go back as OSS
does: an XML body with `Code`, or for HEAD the same XML base64 in `x-oss-err`.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import hmac
import logging
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from tests.connectors.oss_ops import OSSError, OSSOperations

logger = logging.getLogger(__name__)

_SUBRESOURCES = frozenset(
    [
        "acl",
        "uploadId",
        "uploads",
        "partNumber",
        "delete",
        "location",
        "objectMeta",
        "bucketInfo",
        "append",
        "position",
        "security-token",
        "continuation-token",
        "tagging",
        "symlink",
        "restore",
        "versionId",
        "versions",
        "stat",
        "response-content-type",
        "response-content-language",
        "response-expires",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "x-oss-process",
    ]
)
"""Query parameters that are part of a v1 CanonicalizedResource (OSS docs, "Signature version 1")."""


class OSSHandler(BaseHTTPRequestHandler, OSSOperations):
    """One client connection of the test server (HTTP/1.1 keep-alive); dispatches to `OSSOperations`."""

    protocol_version = "HTTP/1.1"
    server: Any
    server_version = "AliyunOSS"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.server.sockets_lock:
            self.server.open_sockets.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `OSSServer.counts` instead."""

    def do_GET(self) -> None:
        self._dispatch()

    do_PUT = do_POST = do_HEAD = do_DELETE = do_GET

    # -- plumbing --------------------------------------------------------------------------

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            with self.server.oss.lock:
                self.server.oss.chunked_bodies += 1
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        all_headers = {
            "x-oss-request-id": self.request_id,
            "Date": email.utils.formatdate(usegmt=True),
            "Content-Length": str(len(body)),
            **(headers or {}),
        }
        if body and "Content-Type" not in all_headers:
            all_headers["Content-Type"] = "application/xml"
        for name, value in all_headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _error(self, err: OSSError) -> None:
        body = self._xml(
            "Error",
            [
                ("Code", err.code),
                ("Message", err.message),
                ("RequestId", self.request_id),
                ("HostId", self.headers.get("Host", "")),
                *err.extra.items(),
                ("EC", "0000-00000000"),
            ],
        )
        headers = {"x-oss-ec": "0000-00000000"}
        if self.command == "HEAD":
            headers["x-oss-err"] = base64.b64encode(body).decode()
            body = b""
        self._send(err.status, body, headers)

    def _dispatch(self) -> None:
        self.request_id = uuid.uuid4().hex[:24].upper()
        oss = self.server.oss
        raw_path, _, raw_query = self.path.partition("?")
        self.query = dict(parse_qsl(raw_query, keep_blank_values=True))
        self.bucket, self.key = self._bucket_and_key(raw_path)
        try:
            body = self._body()
            op = self._operation()
            with oss.lock:
                oss.counts[op] += 1
                if op == "GetObject" and "Range" in self.headers:
                    oss.ranges.append(self.headers["Range"])
            self._authenticate(op)
            oss._wait_if_held(op)
            fault = oss._take_fault(op)
            if fault is not None and fault.drop_after < 0:
                raise OSSError(fault.status, fault.code, f"injected fault for {op}")
            handler = getattr(self, f"_op_{op}", None)
            if handler is None:
                raise OSSError(501, "NotImplemented", f"{op} is not implemented by the test server")
            handler(body, fault)
        except OSSError as err:
            self._error(err)
        except (ConnectionError, OSError):
            self.close_connection = True
        except Exception as exc:  # a bug in the test server: answer it, so the test shows it
            logger.exception("OSS test server failed on %s %s", self.command, self.path)
            self._error(OSSError(500, "InternalError", f"test server bug: {exc!r}"))

    def _bucket_and_key(self, raw_path: str) -> tuple[str, str]:
        host = self.headers.get("Host", "").rsplit(":", 1)[0]
        labels = host.split(".")
        virtual = len(labels) > 1 and not all(p.isdigit() for p in labels) and host != "localhost"
        path = raw_path.lstrip("/")
        if virtual:
            return labels[0], unquote(path)
        bucket, _, key = path.partition("/")
        return unquote(bucket), unquote(key)

    def _operation(self) -> str:
        q, method = self.query, self.command
        if not self.bucket:
            return "ListBuckets"
        if not self.key:
            if method == "GET":
                return "ListObjectsV2" if q.get("list-type") == "2" else "ListObjects"
            return {"PUT": "PutBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, method)
        if "uploads" in q and method == "POST":
            return "InitiateMultipartUpload"
        if "uploadId" in q:
            if method == "PUT":
                return "UploadPart"
            return {"GET": "ListParts", "POST": "CompleteMultipartUpload"}.get(method, "AbortMultipartUpload")
        return {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject"}.get(method, "DeleteObject")

    # -- auth ------------------------------------------------------------------------------

    def _authenticate(self, op: str) -> None:
        oss = self.server.oss
        auth = self.headers.get("Authorization", "")
        if auth.startswith("OSS4-HMAC-SHA256 "):
            key_id, given, expected = self._v4_signature(auth)
        elif auth.startswith("OSS "):
            key_id, _, given = auth[4:].partition(":")
            expected = self._v1_signature(oss.credentials.get(key_id, ""))
        else:
            raise OSSError(
                403, "AccessDenied", "You have no right to access this object because of bucket acl."
            )
        if key_id not in oss.credentials:
            raise OSSError(
                403,
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records.",
                OSSAccessKeyId=key_id,
            )
        if not hmac.compare_digest(given, expected):
            raise OSSError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
                OSSAccessKeyId=key_id,
            )
        allowed = oss.allowed_ops.get(key_id)
        if allowed is not None and op not in allowed:
            raise OSSError(403, "AccessDenied", f"You are forbidden to {op}.")

    def _v1_signature(self, secret: str) -> str:
        h = self.headers
        oss_headers = sorted((k.lower(), v) for k, v in h.items() if k.lower().startswith("x-oss-"))
        canon_headers = "".join(f"{k}:{v}\n" for k, v in oss_headers)
        sub = sorted((k, v) for k, v in self.query.items() if k in _SUBRESOURCES)
        resource = f"/{self.bucket}/{self.key}" if self.bucket else "/"
        if sub:
            resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in sub)
        date = h.get("x-oss-date") or h.get("Date") or ""
        parts = [self.command, h.get("Content-MD5") or "", h.get("Content-Type") or "", date]
        to_sign = "\n".join(parts) + "\n" + canon_headers + resource
        digest = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()

    def _v4_signature(self, auth: str) -> tuple[str, str, str]:
        fields = dict(p.strip().split("=", 1) for p in auth.split(" ", 1)[1].split(","))
        key_id, scope = fields["Credential"].split("/", 1)
        date, region, product, _ = scope.split("/")
        extra = (
            sorted(fields.get("AdditionalHeaders", "").split(";")) if "AdditionalHeaders" in fields else []
        )
        h = self.headers
        signed = sorted(
            (k.lower(), v)
            for k, v in h.items()
            if k.lower().startswith("x-oss-")
            or k.lower() in ("content-type", "content-md5")
            or k.lower() in extra
        )
        enc = lambda s, safe="": quote(s, safe="-_.~" + safe)  # noqa: E731
        uri = enc(f"/{self.bucket}/{self.key}" if self.bucket else "/", "/")
        query = "&".join(
            f"{k}={v}" if v else k for k, v in sorted((enc(k), enc(v)) for k, v in self.query.items())
        )
        canonical = "\n".join(
            [
                self.command,
                uri,
                query,
                "".join(f"{k}:{v}\n" for k, v in signed),
                ";".join(extra),
                h.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD"),
            ]
        )
        stamp = h.get("x-oss-date", "")
        to_sign = "\n".join(
            ["OSS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = ("aliyun_v4" + self.server.oss.credentials.get(key_id, "")).encode()
        for part in (date, region, product, "aliyun_v4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        return key_id, fields["Signature"], hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
