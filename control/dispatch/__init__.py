"""Dispatch adapters: start, stop and describe agent processes (local now; Ray and Kubernetes later)."""

from control.dispatch.base import Adapter, Launch, Observed
from control.dispatch.local import LocalAdapter

__all__ = ["Adapter", "Launch", "LocalAdapter", "Observed"]
