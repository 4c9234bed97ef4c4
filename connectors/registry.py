"""The connector registry: connectType -> Connector class, imported lazily on first use.

Built-in connectors are listed as "module:Class" strings, so `names()` imports nothing and a
missing driver only matters to the connection that needs it. Third parties add connectors with
`register()` or an entry point in the group `atom.connectors` (name = connectType,
value = "module:Class"). Also here: `config_from_url()` and `open_connector()`.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import replace
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

from connectors.base import ConnectionConfig, Connector
from connectors.errors import ConfigError, ConnectorNotInstalled, UnknownConnector

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "atom.connectors"

_KNOWN: dict[str, tuple[str, str]] = {  # keep sorted
    "ALIYUNOSS": ("connectors.oss:OSSConnector", "pip install oss2"),
    "FILE": ("connectors.files:FileConnector", "pip install pandas pyarrow"),
    "MYSQL": ("connectors.mysql:MySQLConnector", "pip install pymysql connectorx pandas"),
    "REDIS": ("connectors.redis:RedisConnector", "pip install 'redis[hiredis]'"),
    "S3": ("connectors.s3:S3Connector", "pip install boto3"),
}
"""Built-in connectTypes: (import path, install hint)."""

_registered: dict[str, type[Connector] | str] = {}
_loaded: dict[str, type[Connector]] = {}


def _key(name: str) -> str:
    return name.strip().upper()


def _entry_points() -> dict[str, str]:
    try:
        return {_key(ep.name): ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    except Exception:  # a broken distribution must not break the registry
        logger.warning("could not list %s entry points", ENTRY_POINT_GROUP, exc_info=True)
        return {}


def names() -> list[str]:
    """Every known connectType (built-in, registered, entry points), sorted; imports nothing."""
    return sorted(set(_KNOWN) | set(_registered) | set(_entry_points()))


def _import(name: str, path: str, hint: str) -> type[Connector]:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConnectorNotInstalled(name, hint or f"install the package that provides {module_name}") from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigError(f"{path!r} registered for connectType {name} is not a Connector class", name=name)
    return cls


def get(name: str) -> type[Connector]:
    """The Connector class for a connectType (case-insensitive), imported on first use.

    Args:
        name: a connectType such as "MYSQL" or "file".

    Returns:
        The class; build it with a `ConnectionConfig`.

    Raises:
        UnknownConnector: nothing is registered under that name (the message lists valid ones).
        ConnectorNotInstalled: the driver behind it is missing (the message says what to install).
    """
    key = _key(name)
    if key in _loaded:
        return _loaded[key]
    entry = _registered.get(key)
    if isinstance(entry, type):
        cls = entry
    elif isinstance(entry, str):
        cls = _import(key, entry, "")
    elif key in _KNOWN:
        path, hint = _KNOWN[key]
        cls = _import(key, path, hint)
    else:
        path = _entry_points().get(key, "")
        if not path:
            raise UnknownConnector(name, known=names())
        cls = _import(key, path, "")
    _loaded[key] = cls
    return cls


def register(name: str, cls_or_path: type[Connector] | str, clobber: bool = False) -> None:
    """Add a connector under a connectType.

    Args:
        name: the connectType (stored upper-case).
        cls_or_path: a Connector subclass, or "module:Class" to import on first use.
        clobber: replace an existing entry (a built-in one included) instead of refusing.

    Raises:
        ConfigError: the name is taken and `clobber` is False, or the class is not a Connector.
    """
    key = _key(name)
    if not key:
        raise ConfigError("a connector needs a non-empty connectType name")
    if isinstance(cls_or_path, type) and not issubclass(cls_or_path, Connector):
        raise ConfigError(f"{cls_or_path.__name__} is not a Connector subclass", name=key)
    if isinstance(cls_or_path, str) and ":" not in cls_or_path:
        raise ConfigError(f"connector path {cls_or_path!r} must look like 'package.module:Class'", name=key)
    if not clobber and (key in _registered or key in _KNOWN):
        raise ConfigError(
            f"connectType {key} is already registered: pass clobber=True to replace it", name=key
        )
    _registered[key] = cls_or_path
    _loaded.pop(key, None)


def unregister(name: str) -> None:
    """Remove a connector added with `register()` (built-ins come back if they were clobbered)."""
    key = _key(name)
    _registered.pop(key, None)
    _loaded.pop(key, None)


def open_connector(config: ConnectionConfig | str) -> Connector:
    """Build the connector for a connection record or URL; no I/O happens until it is used.

    Args:
        config: a `ConnectionConfig`, or a URL accepted by `config_from_url`.

    Returns:
        An unopened `Connector`; use it as `async with open_connector(cfg) as conn:`.
    """
    if isinstance(config, str):
        config = config_from_url(config)
    return get(config.connect_type)(config)


_SCHEME_ALIASES = {
    "MYSQL+PYMYSQL": "MYSQL",
    "MARIADB": "MYSQL",
    "OSS": "ALIYUNOSS",
    "REDISS": "REDIS",
    "REDIS+CLUSTER": "REDIS",
    "UNIX": "REDIS",
    "HTTP": "FILE",
    "HTTPS": "FILE",
}
_FLOAT_OPTIONS = ("connect_timeout", "read_timeout", "write_timeout", "socket_timeout")
_BUCKET_STORES = ("S3", "ALIYUNOSS")


def config_from_url(url: str) -> ConnectionConfig:
    """Parse a connection URL into a `ConnectionConfig`.

    Accepted forms (query parameters go to `source_conf`):

    - `file:///base/dir` (or `file://` for no base); `https://host/base/` (FILE over HTTP)
    - `mysql://user:pass@host:port/db` (`mysql+pymysql://`, `mariadb://` too)
    - `redis://[user:pass@]host:port/db`, `rediss://` (TLS), `unix:///path/redis.sock?db=0`,
      `redis+cluster://host:port` or `?cluster=true` (colonyType GROUP)
    - `s3://[key:secret@]bucket/prefix?endpoint=http://host:port&region=...`,
      `oss://[key:secret@]bucket/prefix?endpoint=https://oss-cn-hangzhou.aliyuncs.com`
      (the endpoint becomes `addr`, the bucket `space`)
    - `<type>://user:pass@host:port/space` for any other registered connectType

    Raises:
        ConfigError: the URL has no scheme or a bad port.
        UnknownConnector: the scheme names no connectType.
    """
    parsed = urlparse(url)
    if not parsed.scheme:
        raise ConfigError("a connection URL needs a scheme such as file://, mysql://, s3:// or https://")
    scheme = _key(parsed.scheme)
    kind = _SCHEME_ALIASES.get(scheme, scheme)
    if kind not in names():
        raise UnknownConnector(parsed.scheme, known=names())
    conf: dict[str, Any] = dict(parse_qsl(parsed.query))
    for name in _FLOAT_OPTIONS:
        if name in conf:
            conf[name] = float(conf[name])
    account = unquote(parsed.username or "")
    password = unquote(parsed.password or "")
    if kind == "FILE":
        if scheme in ("HTTP", "HTTPS"):
            return ConnectionConfig("FILE", addr=url)  # the query belongs to the URL itself
        host = "" if parsed.netloc in ("", "localhost") else parsed.netloc
        return ConnectionConfig("FILE", addr=unquote(host + parsed.path), source_conf=conf)
    if kind in _BUCKET_STORES:
        endpoint = str(conf.pop("endpoint", conf.pop("endpoint_url", "")))
        return ConnectionConfig(
            kind,
            addr=endpoint,
            account=account,
            password=password,
            space=parsed.hostname or "",
            source_conf=conf,
        )
    if kind == "REDIS":
        return _redis_config(scheme, parsed.path, conf, parsed, account, password)
    try:
        port = parsed.port
    except ValueError as exc:
        raise ConfigError(f"bad port in connection URL for {parsed.hostname}: use host:port") from exc
    return ConnectionConfig(
        kind,
        addr=parsed.hostname or "",
        port=port,
        account=account,
        password=password,
        space=unquote(parsed.path.lstrip("/")),
        source_conf=conf,
    )


def _redis_config(
    scheme: str, path: str, conf: dict[str, Any], parsed: Any, account: str, password: str
) -> ConnectionConfig:
    cluster = scheme == "REDIS+CLUSTER" or str(conf.pop("cluster", "")).lower() in ("1", "true", "yes")
    if scheme == "REDISS":
        conf["ssl"] = True
    if scheme == "UNIX":
        conf["unix_socket"] = unquote(path)
        return ConnectionConfig(
            "REDIS", account=account, password=password, space=str(conf.pop("db", "")), source_conf=conf
        )
    try:
        port = parsed.port
    except ValueError as exc:
        raise ConfigError(f"bad port in Redis URL for {parsed.hostname}: use host:port") from exc
    return ConnectionConfig(
        "REDIS",
        addr=parsed.hostname or "",
        port=port,
        account=account,
        password=password,
        space=unquote(path.lstrip("/")) or str(conf.pop("db", "")),
        colony_type="GROUP" if cluster else "SINGLE",
        source_conf=conf,
    )


def split_url(url: str) -> tuple[ConnectionConfig, str]:
    """Split a URL that names one thing to read into (connection, target).

    `s3://bucket/data/x.parquet` -> (S3 bucket, "data/x.parquet");
    `https://host/data/x.csv` -> (FILE, the URL); `file:///srv/x.csv` -> (FILE, "/srv/x.csv");
    `mysql://u@h/db?table=orders` -> (MYSQL db, "orders"); `redis://h/0?match=user:*` -> (REDIS, "user:*").

    Raises:
        ConfigError: the URL names no target (a database URL without `table=`/`match=`).
    """
    parsed = urlparse(url)
    config = config_from_url(url)
    if config.connect_type == "FILE":
        if _key(parsed.scheme) in ("HTTP", "HTTPS"):
            return replace(config, addr=""), url
        return replace(config, addr=""), config.addr
    if config.connect_type in _BUCKET_STORES:
        return config, unquote(parsed.path.lstrip("/"))
    conf = dict(config.source_conf)
    target = str(conf.pop("table", conf.pop("query", conf.pop("match", ""))))
    if not target:
        raise ConfigError(
            f"{config.describe()}: the URL names no table or key pattern; "
            "add ?table=NAME (SQL) or ?match=PATTERN (Redis)"
        )
    return replace(config, source_conf=conf), target


def open_url(url: str) -> tuple[Connector, str]:
    """The connector and target for a URL accepted by `split_url` (no I/O yet)."""
    config, target = split_url(url)
    return open_connector(config), target
