"""HTTP clients for the control API (shared by the CLI, the TUI and the runtime agent), and
`Client`, the Python SDK for scripts and notebooks (`control.client.sdk`)."""

from typing import TYPE_CHECKING, Any

from control.client._async import KINDS, AsyncControlClient
from control.client._sync import ControlClient

if TYPE_CHECKING:
    from control.client.sdk import Client, WaitTimeout

__all__ = ["KINDS", "AsyncControlClient", "Client", "ControlClient", "WaitTimeout"]


def __getattr__(name: str) -> Any:
    # deferred: the SDK reaches into the CLI's spec loader, which imports this package
    if name in ("Client", "WaitTimeout"):
        from control.client import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'control.client' has no attribute {name!r}")
