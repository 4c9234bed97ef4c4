"""HTTP clients for the control API (shared by the CLI, the TUI and the runtime agent)."""

from control.client._async import KINDS, AsyncControlClient
from control.client._sync import ControlClient

__all__ = ["KINDS", "AsyncControlClient", "ControlClient"]
