"""Atom connectors: read and write the stores a company already has, as pandas DataFrames.

The package is the platform's bottom layer and also a library for users' own scripts:

```python
from connectors import ReadOptions, open_connector

async with open_connector("mysql://root@127.0.0.1:3306/test") as conn:
    async for df in conn.read("orders", ReadOptions(paginate_read_num=10_000)):
        ...
```

Names are loaded lazily (module `__getattr__`), so `import connectors` pulls in neither pandas
nor any store's driver; a driver is imported when its connector is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from connectors import errors

if TYPE_CHECKING:
    from connectors._paging import PagedReader
    from connectors.base import ConnectionConfig, Connector, ObjectInfo, ReadOptions, Sink, WriteOptions
    from connectors.registry import config_from_url, get, names, open_connector, open_url, register, split_url
    from connectors.sync import SyncConnector, open_connector_sync, open_url_sync

__all__ = [
    "ConnectionConfig",
    "Connector",
    "ObjectInfo",
    "PagedReader",
    "ReadOptions",
    "Sink",
    "SyncConnector",
    "WriteOptions",
    "config_from_url",
    "errors",
    "get",
    "names",
    "open_connector",
    "open_connector_sync",
    "open_url",
    "open_url_sync",
    "register",
    "split_url",
]

_LAZY: dict[str, str] = {
    "ConnectionConfig": "connectors.base",
    "Connector": "connectors.base",
    "ReadOptions": "connectors.base",
    "WriteOptions": "connectors.base",
    "Sink": "connectors.base",
    "ObjectInfo": "connectors.base",
    "PagedReader": "connectors._paging",
    "config_from_url": "connectors.registry",
    "get": "connectors.registry",
    "names": "connectors.registry",
    "open_connector": "connectors.registry",
    "open_url": "connectors.registry",
    "split_url": "connectors.registry",
    "register": "connectors.registry",
    "SyncConnector": "connectors.sync",
    "open_connector_sync": "connectors.sync",
    "open_url_sync": "connectors.sync",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'connectors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
