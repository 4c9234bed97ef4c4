"""The log lines fetched so far, as one contiguous byte range of the run's log (nothing is dropped),
plus the line cleaning and match finding the log view draws with. No Textual here."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from control.schemas import LogChunk

_CONTROL = re.compile("[\u0000-\u0008\u000b-\u001f\u007f]").sub


class LogBuffer:
    """The log lines loaded so far: bytes `[start, end)` of the file, split at newlines.

    While `start > 0` the first line may be the tail of a longer line; prepending the page before
    it completes it. The last line is the text after the last newline ("" when the loaded text
    ends with one) and grows as more is appended.
    """

    def __init__(self) -> None:
        self.lines: list[str] = [""]
        self.start = 0
        self.end = 0

    @property
    def line_count(self) -> int:
        """Lines to show (a final empty line after the last newline does not count)."""
        return len(self.lines) - (len(self.lines) > 0 and self.lines[-1] == "")

    @property
    def at_start(self) -> bool:
        return self.start == 0

    def reset(self, offset: int, chunk: LogChunk) -> None:
        """Start over with `chunk`, read from byte `offset`."""
        self.lines = chunk.text.split("\n")
        self.start = offset
        self.end = chunk.next_offset

    def prepend(self, chunk: LogChunk) -> int:
        """Put `chunk` (which ends where the loaded range starts) in front; returns lines added."""
        pieces = chunk.text.split("\n")
        self.lines[0] = pieces[-1] + self.lines[0]
        self.lines[0:0] = pieces[:-1]
        self.start = chunk.offset
        return len(pieces) - 1

    def append(self, chunk: LogChunk) -> int:
        """Add `chunk` (read from `end`); returns the index of the first line that changed."""
        first = len(self.lines) - 1
        pieces = chunk.text.split("\n")
        self.lines[-1] += pieces[0]
        self.lines.extend(pieces[1:])
        self.end = chunk.next_offset
        return first

    def find(self, query: str, start: int, *, forward: bool = True) -> int | None:
        """Index of the next line (after/before `start`, exclusive) containing `query`, ignoring case."""
        if not query:
            return None
        needle = query.lower()
        rng: Iterable[int] = (
            range(max(start + 1, 0), self.line_count)
            if forward
            else range(min(start, self.line_count) - 1, -1, -1)
        )
        lines = self.lines
        for i in rng:
            if needle in lines[i].lower():
                return i
        return None


def clean(line: str) -> str:
    """A log line ready to draw: tabs expanded, a trailing CR and control characters removed."""
    return _CONTROL("�", line.rstrip("\r").expandtabs())


def highlight(line: str, query: str) -> list[tuple[int, int]]:
    """Character spans of `query` (any case) in `line`."""
    spans = []
    if query:
        low, needle = line.lower(), query.lower()
        at = low.find(needle)
        while at >= 0:
            spans.append((at, at + len(needle)))
            at = low.find(needle, at + len(needle))
    return spans
