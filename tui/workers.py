"""Workers that never take the dashboard down: a failure becomes a notice and a log line.

Textual sends `Worker.StateChanged` only to the node that started the worker (it does not bubble),
so every node that starts workers (the app, `AtomScreen`, `FormScreen`, `RunLog`) hands the event
to `report_failure`.
"""

from __future__ import annotations

import logging

from textual.dom import DOMNode
from textual.worker import Worker, WorkerState

logger = logging.getLogger(__name__)


def report_failure(node: DOMNode, event: Worker.StateChanged) -> None:
    """If the worker failed unexpectedly, say so in one notice and log the traceback."""
    error = event.worker.error
    if event.state is not WorkerState.ERROR or error is None:
        return
    logger.error("worker %s failed", event.worker.name, exc_info=error)
    node.app.notify(f"unexpected {type(error).__name__}: {error}", severity="error", timeout=10)
