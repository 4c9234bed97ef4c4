"""Dispatch: one seam (`Adapter`) with a local-process and a Ray adapter, and the planner that picks one."""

from control.dispatch.base import Adapter, Admission, CodeRef, Infeasible, Observed, RunDescription
from control.dispatch.local import LocalAdapter

__all__ = ["Adapter", "Admission", "CodeRef", "Infeasible", "LocalAdapter", "Observed", "RunDescription"]
