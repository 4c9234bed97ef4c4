"""The serving front: one stable endpoint per service name, several model versions behind it.

Control starts one front per service (`atom-runtime front`) and pushes it a routing table
(`runtime_agent.front.routes`); the front keeps the table in its state file and goes on routing
when control is down. Modules: `routes` (the table), `balance` (version and replica choice),
`router` (table switches), `upstream` (the shared client), `proxy` (the ASGI app), `admin`,
`mirror`, `stats`, `state`, `cli`. Names are imported lazily: `import runtime_agent.front` is cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime_agent.front.proxy import Front, FrontConfig
    from runtime_agent.front.routes import MirrorRoute, RouteError, RoutingTable, VersionRoute, parse_table

__all__ = [
    "Front",
    "FrontConfig",
    "MirrorRoute",
    "RouteError",
    "RoutingTable",
    "VersionRoute",
    "parse_table",
]

_WHERE = {
    "Front": "proxy",
    "FrontConfig": "proxy",
    "MirrorRoute": "routes",
    "RouteError": "routes",
    "RoutingTable": "routes",
    "VersionRoute": "routes",
    "parse_table": "routes",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
