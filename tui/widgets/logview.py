"""A run's log, paged from control by byte offset: tail first, earlier pages on demand, follow, search.

`LogBuffer` holds the lines fetched so far (a contiguous byte range of the file; nothing is ever
dropped). `LogView` draws only the visible lines (Line API), so 100k+ lines stay fast. `RunLog`
puts a search field and a status line around it and does the fetching through `fetch(offset,
limit)`, a coroutine returning a `LogChunk` (None when the call failed; the caller said why).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static
from textual.worker import Worker

from control.schemas import LogChunk
from tui.format import count, nbytes
from tui.widgets.log_buffer import LogBuffer, clean, highlight
from tui.workers import report_failure

Fetch = Callable[[int, int], Awaitable[LogChunk | None]]
"""`fetch(offset, limit)`: up to `limit` bytes of the log from byte `offset`."""

MATCH = Style(bgcolor="yellow", color="black")
CURRENT = Style(bgcolor="bright_magenta", color="black", bold=True)


class LogView(ScrollView, can_focus=True):
    """Draws a `LogBuffer`; keys for top/bottom/search go to the `RunLog` around it as messages."""

    DEFAULT_CSS = """
    LogView { height: 1fr; background: $surface; overflow: auto; }
    LogView:focus { background-tint: $foreground 5%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home,g", "scroll_home", "Start of log", show=False),
        Binding("end,G", "scroll_end", "End of log, follow", show=False, key_display="G"),
        Binding("slash", "search", "Search", key_display="/"),
        Binding("n", "next_match(True)", "Next match", show=False),
        Binding("N", "next_match(False)", "Previous match", show=False),
    ]

    class Wanted(Message):
        """The user asked for something only `RunLog` can do (`earlier`, `start`, `end`, `search`,
        `next`, `previous`)."""

        def __init__(self, what: str) -> None:
            super().__init__()
            self.what = what

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.buffer = LogBuffer()
        self.query_text = ""
        self.current: int | None = None
        """The line of the match found last (drawn stronger)."""
        self.follow = True
        self._width = 0

    # -- content ----------------------------------------------------------------------------

    def _grow(self, lines: Iterable[str]) -> None:
        widest = max((cell_len(clean(line)) for line in lines), default=0)
        self._width = max(self._width, widest)
        self.virtual_size = Size(self._width, self.buffer.line_count)

    def reset(self, offset: int, chunk: LogChunk) -> None:
        self.buffer.reset(offset, chunk)
        self._width = 0
        self._grow(self.buffer.lines)
        self.scroll_end(animate=False, force=True, x_axis=False)
        self.refresh()

    def prepend(self, chunk: LogChunk) -> int:
        """Add an earlier page; the lines on screen stay where they are."""
        added = self.buffer.prepend(chunk)
        self._grow(self.buffer.lines[: added + 1])
        if self.current is not None:
            self.current += added
        if added:
            self.scroll_to(y=self.scroll_y + added, animate=False, immediate=True)
        self.refresh()
        return added

    def append(self, chunk: LogChunk) -> None:
        """Add what was written since; follows to the end when following."""
        if not chunk.text:
            return
        first = self.buffer.append(chunk)
        self._grow(self.buffer.lines[first:])
        if self.follow:
            self.scroll_end(animate=False, force=True, x_axis=False)
        self.refresh()

    # -- drawing ----------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        style = self.rich_style
        if index >= self.buffer.line_count:
            return Strip.blank(width, style)
        line = clean(self.buffer.lines[index])
        text = Text(line, no_wrap=True, end="")
        text.stylize(style)
        mark = CURRENT if index == self.current else MATCH
        for a, b in highlight(line, self.query_text):
            text.stylize(mark, a, b)
        strip = Strip(text.render(self.app.console), cell_len(line))
        return strip.crop_extend(scroll_x, scroll_x + width, style).apply_offsets(scroll_x, index)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value < old_value:
            self.follow = False
        if round(new_value) == 0 and not self.buffer.at_start and old_value != new_value:
            self.post_message(self.Wanted("earlier"))

    def on_resize(self) -> None:
        if self.follow:
            self.scroll_end(animate=False, force=True, x_axis=False)

    def show_line(self, index: int) -> None:
        """Scroll so line `index` is in the middle of the view."""
        self.follow = False
        self.scroll_to(y=max(0, index - self.size.height // 2), animate=False, immediate=True)
        self.refresh()

    # -- keys -------------------------------------------------------------------------------

    def action_scroll_home(self) -> None:
        self.follow = False
        self.scroll_to(y=0, animate=False, immediate=True)
        if not self.buffer.at_start:
            self.post_message(self.Wanted("start"))

    def action_scroll_end(self) -> None:
        self.follow = True
        self.scroll_end(animate=False, force=True, x_axis=False)
        self.post_message(self.Wanted("end"))

    def action_search(self) -> None:
        self.post_message(self.Wanted("search"))

    def action_next_match(self, forward: bool) -> None:
        self.post_message(self.Wanted("next" if forward else "previous"))


class RunLog(Vertical):
    """A run's log: tail first, `home` loads earlier pages up to line 1, follow, `/` search.

    Args:
        fetch: reads a byte range of the log from control.
        page: bytes per request.
    """

    DEFAULT_CSS = """
    RunLog { height: 1fr; }
    RunLog #log-status { height: 1; color: $text-muted; padding: 0 1; }
    RunLog #log-search { display: none; }
    RunLog.searching #log-search { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close_search", "Close search", show=False)]

    def __init__(self, fetch: Fetch, *, page: int, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.fetch = fetch
        self.page = page
        self.loaded = False
        self.eof = False
        self.log_size = 0
        self._note = ""
        self._earlier_busy = False
        self._polling = False

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_failure(self, event)

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search the log; Enter: next match, Esc: close", id="log-search")
        yield LogView(id="log-view")
        yield Static("", id="log-status")

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    @property
    def buffer(self) -> LogBuffer:
        return self.view.buffer

    # -- loading ----------------------------------------------------------------------------

    def poll(self) -> None:
        """Load the tail (first time) or what was written since (then); call it on every refresh."""
        if not self._polling:
            self._poll()

    @work(group="log-tail", exclusive=True, exit_on_error=False)
    async def _poll(self) -> None:
        self._polling = True
        try:
            await self._read_on()
        finally:
            self._polling = False

    async def _read_on(self) -> None:
        if not self.loaded:
            probe = await self.fetch(1 << 62, 1)
            if probe is None:
                return
            self.log_size = probe.next_offset
            start = max(0, self.log_size - self.page)
            chunk = await self.fetch(start, self.page)
            if chunk is None:
                return
            self.view.reset(start, chunk)
            self.loaded = True
            self.eof = chunk.eof
        while not self.eof or self.buffer.end < self.log_size:
            chunk = await self.fetch(self.buffer.end, self.page)
            if chunk is None:
                return
            self.view.append(chunk)
            self.eof = chunk.eof
            self.log_size = max(self.log_size, chunk.next_offset)
            if chunk.next_offset - chunk.offset < self.page:
                break
        self._status()

    @work(group="log-earlier", exclusive=True, exit_on_error=False)
    async def load_earlier(self, *, to_start: bool = False, until: str | None = None) -> None:
        """Prepend the page before the loaded range; with `to_start` until line 1 is loaded, with
        `until` until a line containing it is loaded (then jump there)."""
        self._earlier_busy = True
        try:
            found = await self._prepend_pages(to_start, until)
        finally:
            self._earlier_busy = False
            self._note = ""
        if until is not None:
            if found is not None:
                self._jump(found)
            elif self.buffer.at_start:
                self.search(until, forward=False)  # from line 1: wraps to the end
        self._status()

    async def _prepend_pages(self, to_start: bool, until: str | None) -> int | None:
        """Prepend pages (one; or up to line 1; or until a line has `until`: its index)."""
        view = self.view
        if not self.loaded:
            return None
        while not self.buffer.at_start:
            start = max(0, self.buffer.start - self.page)
            self._note = f"loading earlier lines ({nbytes(self.buffer.start)} to go)"
            self._status()
            chunk = await self.fetch(start, self.buffer.start - start)
            if chunk is None:
                return None
            added = view.prepend(chunk)
            if to_start:
                view.scroll_to(y=0, animate=False, immediate=True)
            if until is not None:
                found = self.buffer.find(until, added + 1, forward=False)
                if found is not None:
                    return found
            elif not to_start:
                return None
        return None

    # -- search -----------------------------------------------------------------------------

    def search(self, query: str, *, forward: bool = True) -> None:
        """Jump to the next (or previous) line containing `query`, from the last match or the top of
        the view. Forward wraps to the first loaded line; backward past the loaded start loads
        earlier pages until a match (and wraps to the end only at line 1)."""
        view = self.view
        view.query_text = query
        here = view.current if view.current is not None else view.scroll_offset.y + (-1 if forward else 0)
        buf = self.buffer
        found = buf.find(query, here, forward=forward)
        wrapped = False
        if found is None and not forward and not buf.at_start:
            self.load_earlier(until=query)
            return
        if found is None:
            found = buf.find(query, -1 if forward else buf.line_count, forward=forward)
            wrapped = True
        if found is None:
            self._note = f"no match for {query!r}"
            view.current = None
            view.refresh()
            self._status()
            return
        self._jump(found, wrapped=wrapped)

    def _jump(self, index: int, *, wrapped: bool = False) -> None:
        self.view.current = index
        self.view.show_line(index)
        where = f"line {count(index + 1)}" + ("" if self.buffer.at_start else " of those loaded")
        self._note = f"match on {where}" + (" (wrapped)" if wrapped else "")
        self._status()

    # -- events -----------------------------------------------------------------------------

    @on(LogView.Wanted)
    def _wanted(self, event: LogView.Wanted) -> None:
        event.stop()
        if event.what == "earlier":
            if not self._earlier_busy:
                self.load_earlier()
        elif event.what == "start":
            self.load_earlier(to_start=True)
        elif event.what == "end":
            self.poll()
        elif event.what == "search":
            self.add_class("searching")
            self.query_one("#log-search", Input).focus()
        elif event.what in ("next", "previous") and self.view.query_text:
            self.search(self.view.query_text, forward=event.what == "next")
        self._status()

    @on(Input.Submitted, "#log-search")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.search(event.value)

    @on(Input.Changed, "#log-search")
    def _typed(self, event: Input.Changed) -> None:
        self.view.query_text = event.value
        self.view.current = None
        self.view.refresh()

    def action_close_search(self) -> None:
        """Hide the search field (matches stay highlighted) and give the log the focus."""
        self.remove_class("searching")
        self.view.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close_search":
            return self.has_class("searching")
        return True

    def _status(self) -> None:
        buf = self.buffer
        if not self.loaded:
            text = "loading the log…"
        elif buf.end == 0 and buf.line_count == 0:
            text = "no log yet" + (" (the run is over)" if self.eof else "; waiting for the first line")
        else:
            where = "from line 1" if buf.at_start else f"{nbytes(buf.start)} earlier not loaded (home)"
            state = "run over" if self.eof else ("following" if self.view.follow else "paused (G follows)")
            text = f"{count(buf.line_count)} lines · {nbytes(buf.end - buf.start)} loaded, {where} · {state}"
        if self._note:
            text += f" · {self._note}"
        self.query_one("#log-status", Static).update(text)
