"""REDIS wire layer: settings from a ConnectionConfig, and a blocking RESP2 connection for bulk work.

The REDIS connector moves rows over its own sockets instead of redis-py's command objects: a
batch of commands is written as one buffer, followed by `ECHO <marker>`, and the replies are read
back as one buffer up to the marker's reply. The bulk decoder (`_redis_decode`) turns that
buffer into Arrow columns with numpy, so no Python object is made per field. Small replies are
parsed by hiredis. Everything here blocks: callers run it in worker threads.

Every socket or reply error becomes a typed connector error (`translate_reply_error`,
`SourceUnavailable` for dropped connections); the password never appears in a message.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import hiredis

from connectors.errors import (
    AuthenticationFailed,
    ConnectorConfigError,
    ConnectorError,
    PermissionDenied,
    RequestRejected,
    SourceUnavailable,
    TargetNotFound,
)

if TYPE_CHECKING:
    from connectors.base import ConnectionConfig

DEFAULT_PORT = 6379
Arg = bytes | str | int | float

_TRANSIENT_PREFIXES = ("LOADING", "BUSY", "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY")
_AUTH_PREFIXES = ("WRONGPASS", "NOAUTH", "ERR invalid password", "ERR invalid username", "ERR AUTH")


@dataclass(frozen=True)
class RedisSettings:
    """How to reach one Redis deployment, parsed and checked once from a `ConnectionConfig`.

    Attributes:
        host: server (SINGLE) or seed node (GROUP) address.
        port: its TCP port.
        unix_socket: a Unix socket path instead of host/port (SINGLE only).
        username: ACL user (empty: the default user).
        password: secret; never in repr or messages.
        db: database index (always 0 in a cluster).
        cluster: GROUP colonyType (Redis Cluster).
        ssl: connect with TLS; `ssl_options` holds ca_certs/certfile/keyfile/cert_reqs/check_hostname.
        connect_timeout: seconds to connect.
        socket_timeout: seconds one reply may take.
        where: the secret-free name for messages.
        client_name: CLIENT SETNAME prefix of every connection (`<name>-read`, `<name>-write`).
        conf: the remaining `source_conf` (connector options such as `staging_ttl_s`).
    """

    host: str
    port: int
    unix_socket: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    db: int = 0
    cluster: bool = False
    ssl: bool = False
    ssl_options: dict[str, Any] = field(default_factory=dict)
    connect_timeout: float = 5.0
    socket_timeout: float = 60.0
    where: str = ""
    client_name: str = "atom"
    conf: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: ConnectionConfig) -> RedisSettings:
        """Check a REDIS connection record; raises ConnectorConfigError naming the bad field."""
        conf = dict(config.source_conf)
        colony = (config.colony_type or "SINGLE").strip().upper()
        if colony not in ("SINGLE", "GROUP"):
            raise ConnectorConfigError(
                f"colonyType {config.colony_type!r} of {config.describe()} is not SINGLE or GROUP: fix it"
            )
        space = str(config.space or "").strip() or "0"
        if not space.isdigit():
            raise ConnectorConfigError(
                f"space {config.space!r} of {config.describe()} is not a Redis db index: use 0-15 or empty"
            )
        db = int(space)
        if colony == "GROUP" and db:
            raise ConnectorConfigError(
                f"Redis Cluster has only db 0, but {config.describe()} asks for db {db}: set space to 0"
            )
        unix_socket = str(conf.pop("unix_socket", "") or "")
        if unix_socket and colony == "GROUP":
            raise ConnectorConfigError(f"{config.describe()}: a cluster cannot be reached over a unix socket")
        use_ssl = _as_bool(conf.pop("ssl", False))
        ssl_options = {k[4:]: conf.pop(k) for k in list(conf) if k.startswith("ssl_")}
        try:
            connect_timeout = float(conf.pop("connect_timeout", 5.0))
            socket_timeout = float(conf.pop("socket_timeout", 60.0))
        except (TypeError, ValueError) as exc:
            raise ConnectorConfigError(
                f"{config.describe()}: timeouts in source_conf must be seconds"
            ) from exc
        client_name = str(conf.pop("client_name", "atom") or "atom")
        if any(ch.isspace() for ch in client_name):
            raise ConnectorConfigError(f"{config.describe()}: source_conf client_name may not contain spaces")
        host = config.addr or "127.0.0.1"
        port = int(config.port or DEFAULT_PORT)
        where = f"REDIS {unix_socket}/{db}" if unix_socket else f"REDIS {host}:{port}/{db}"
        if colony == "GROUP":
            where = f"REDIS cluster {host}:{port}"
        return cls(
            host=host,
            port=port,
            unix_socket=unix_socket,
            username=config.account,
            password=config.password,
            db=db,
            cluster=colony == "GROUP",
            ssl=use_ssl,
            ssl_options=ssl_options,
            connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            where=where,
            client_name=client_name,
            conf=conf,
        )


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


@dataclass(frozen=True)
class Endpoint:
    """One server process: `host:port`, or a unix socket path."""

    host: str
    port: int
    unix_socket: str = ""

    @property
    def label(self) -> str:
        return self.unix_socket or f"{self.host}:{self.port}"


def pack(*args: Arg) -> bytes:
    """One command in RESP: `*N\\r\\n$len\\r\\narg\\r\\n...`."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, bytes):
            data = arg
        else:
            data = repr(arg).encode() if isinstance(arg, float) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def translate_reply_error(message: str, where: str, doing: str, target: str = "") -> ConnectorError:
    """The typed error for a Redis error reply (`WRONGPASS ...`, `NOPERM ...`, `LOADING ...`)."""
    thing = f" {target!r}" if target else ""
    bare = message.removeprefix("ERR ")  # redis-py strips the ERR prefix, raw replies keep it
    if message.startswith(_AUTH_PREFIXES):
        return AuthenticationFailed(
            f"{where} refused the login ({message.split(' ', 1)[0]}): "
            "check the account (ACL user) and password"
        )
    if message.startswith("NOPERM"):
        return PermissionDenied(
            f"{where}: the ACL user may not do this ({doing}{thing}): {message}; grant it or use another user"
        )
    if message.startswith(_TRANSIENT_PREFIXES):
        return SourceUnavailable(
            f"{where} is not serving right now ({doing}{thing}: {message}); retry when it is ready"
        )
    if bare.startswith("DB index is out of range"):
        return ConnectorConfigError(
            f"{where}: the db index does not exist on the server: fix the space field"
        )
    if bare.startswith("no such key"):
        return TargetNotFound(f"{where}: key{thing} vanished while {doing}: retry the write")
    return RequestRejected(f"{where} refused {doing}{thing}: {message}")


class RespConnection:
    """A blocking RESP2 connection: batched raw replies for bulk work, hiredis for small ones.

    Not thread-safe: one thread uses it at a time. Open it with `open()`, close with `close()`.
    """

    def __init__(self, settings: RedisSettings, endpoint: Endpoint, *, role: str = "bulk") -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.name = f"{settings.client_name}-{role}"
        self.where = settings.where if not settings.cluster else f"REDIS cluster node {endpoint.label}"
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._token = os.urandom(8).hex().encode()
        self._serial = 0

    # -- socket ----------------------------------------------------------------------------

    def open(self) -> RespConnection:
        """Connect, log in and select the db; raises typed errors (never the password)."""
        s = self.settings
        try:
            if self.endpoint.unix_socket:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(s.connect_timeout)
                sock.connect(self.endpoint.unix_socket)
            else:
                sock = socket.create_connection((self.endpoint.host, self.endpoint.port), s.connect_timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if s.ssl:
                sock = _ssl_context(s).wrap_socket(
                    sock, server_hostname=None if self.endpoint.unix_socket else self.endpoint.host
                )
            sock.settimeout(s.socket_timeout)
        except ssl.SSLCertVerificationError as exc:
            raise ConnectorConfigError(
                f"{self.where}: TLS certificate check failed ({exc.verify_message}): "
                "set source_conf ssl_ca_certs to the server's CA"
            ) from exc
        except OSError as exc:
            raise self._lost(exc, "connecting") from exc
        self._sock = sock
        hello: list[tuple[Arg, ...]] = []
        if s.password:
            hello.append(("AUTH", s.username, s.password) if s.username else ("AUTH", s.password))
        if s.db and not s.cluster:
            hello.append(("SELECT", s.db))
        hello.append(("CLIENT", "SETNAME", self.name))
        try:
            for reply in self.pipeline(hello):
                if isinstance(reply, hiredis.ReplyError):
                    raise translate_reply_error(str(reply), self.where, "logging in")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        sock, self._sock = self._sock, None
        self._buf.clear()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a worker thread blocked in recv
            with contextlib.suppress(OSError):
                sock.close()

    @property
    def closed(self) -> bool:
        return self._sock is None

    def _lost(self, exc: BaseException, doing: str) -> SourceUnavailable:
        if isinstance(exc, TimeoutError | socket.timeout):
            why = f"no answer within {self.settings.socket_timeout:g}s"
        else:
            why = str(exc) or type(exc).__name__
        return SourceUnavailable(
            f"{self.where} is unreachable or dropped the connection while {doing} ({why}): "
            "check the server is up, then retry"
        )

    def send(self, payload: bytes | Iterable[bytes | memoryview], doing: str = "sending commands") -> None:
        """Write commands (already packed) in one go."""
        if self._sock is None:
            raise SourceUnavailable(f"{self.where}: connection already closed while {doing}; retry")
        data = payload if isinstance(payload, bytes) else b"".join(payload)
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self.close()
            raise self._lost(exc, doing) from exc

    def marker(self) -> tuple[bytes, bytes]:
        """A fresh `ECHO` command and the exact reply bytes that close a batch."""
        self._serial += 1
        token = b"atom-%s-%d" % (self._token, self._serial)
        return pack(b"ECHO", token), b"$%d\r\n%s\r\n" % (len(token), token)

    def recv_until(self, tail: bytes, doing: str = "reading replies") -> bytes:
        """All reply bytes before `tail` (a marker's reply); the marker is consumed.

        The marker is a random 64-bit token per connection plus a counter, so a stored value
        cannot plausibly contain it.
        """
        sock = self._sock
        if sock is None:
            raise SourceUnavailable(f"{self.where}: connection already closed while {doing}; retry")
        buf = self._buf
        start = 0
        while True:
            at = buf.find(tail, start)
            if at >= 0:
                data = bytes(buf[:at])
                del buf[: at + len(tail)]
                return data
            start = max(0, len(buf) - len(tail) + 1)
            try:
                chunk = sock.recv(1 << 20)
            except OSError as exc:
                self.close()
                raise self._lost(exc, doing) from exc
            if not chunk:
                self.close()
                raise self._lost(ConnectionResetError("connection closed by the server"), doing)
            buf += chunk

    def pipeline(self, commands: Sequence[Sequence[Arg]], doing: str = "running commands") -> list[Any]:
        """Send commands and return their replies; error replies come back as `hiredis.ReplyError`."""
        echo, tail = self.marker()
        self.send([pack(*c) for c in commands] + [echo], doing)
        return parse_replies(self.recv_until(tail, doing), len(commands))

    def execute(self, *args: Arg, doing: str = "", target: str = "") -> Any:
        """One command; an error reply raises its typed error."""
        doing = doing or f"running {str(args[0]).upper()}"
        reply = self.pipeline([args], doing)[0]
        if isinstance(reply, hiredis.ReplyError):
            raise translate_reply_error(str(reply), self.where, doing, target)
        return reply


def parse_replies(data: bytes, count: int) -> list[Any]:
    """Parse exactly `count` replies from a raw buffer with hiredis."""
    reader = hiredis.Reader()
    reader.feed(data)
    out = []
    for _ in range(count):
        reply = reader.gets()
        if reply is False:
            raise SourceUnavailable("truncated reply from Redis: the connection was cut mid-reply; retry")
        out.append(reply)
    return out


def _ssl_context(s: RedisSettings) -> ssl.SSLContext:
    opts = s.ssl_options
    ctx = ssl.create_default_context(cafile=opts.get("ca_certs") or None)
    if opts.get("certfile"):
        ctx.load_cert_chain(opts["certfile"], opts.get("keyfile") or None)
    reqs = str(opts.get("cert_reqs", "required")).lower()
    if reqs in ("none", "optional"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE if reqs == "none" else ssl.CERT_OPTIONAL
    elif not _as_bool(opts.get("check_hostname", True)):
        ctx.check_hostname = False
    return ctx
