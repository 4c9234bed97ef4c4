"""Wire bodies of an agent's shipped log: a batch of its output at a byte offset, and what control holds."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from control.schemas._base import Wire

MAX_BATCH_CHARS = 1024 * 1024
"""The most text one batch may carry (the agent sends far smaller batches)."""


class LogBatch(Wire):
    """Output of a run's agent from byte `offset` of its stream (UTF-8): a retried batch is harmless."""

    model_config = ConfigDict(**{**Wire.model_config, "str_strip_whitespace": False})

    offset: int = Field(ge=0, le=2**53)
    text: str = Field(default="", max_length=MAX_BATCH_CHARS)
    final: bool = False
    """The agent's last batch: it exits, nothing follows."""


class LogReceived(Wire):
    """How far into the agent's stream control holds the log: the next batch starts here."""

    received: int
