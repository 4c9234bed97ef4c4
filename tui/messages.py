"""Messages the app sends to the screen in front (posting's `messages.py` pattern)."""

from __future__ import annotations

from textual.message import Message


class ControlRecovered(Message):
    """Control answers again after trouble: the screen in front reloads."""


class SpaceChanged(Message):
    """The current space changed: every space-scoped screen reloads."""

    def __init__(self, space: str) -> None:
        super().__init__()
        self.space = space
