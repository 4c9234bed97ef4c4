"""The log view's paging logic: pages split mid-line join up, earlier pages prepend without losing a
line, follow appends, search finds (and backwards loads) — against an in-memory log with control's
`LogChunk` semantics."""

from __future__ import annotations

from textual.app import App, ComposeResult

from control.schemas import LogChunk
from tests.tui.conftest import until
from tui.widgets.log_buffer import LogBuffer, clean, highlight
from tui.widgets.logview import LogView, RunLog


class FakeLog:
    """What `GET /runs/{id}/logs` answers for a file holding `data` (byte offsets, like control)."""

    def __init__(self, data: bytes = b"", *, over: bool = False) -> None:
        self.data = data
        self.over = over
        self.requests: list[tuple[int, int]] = []

    async def fetch(self, offset: int, limit: int) -> LogChunk:
        self.requests.append((offset, limit))
        size = len(self.data)
        start = min(offset, size)
        chunk = self.data[start : start + limit]
        end = start + len(chunk)
        return LogChunk(
            offset=offset,
            next_offset=end,
            text=chunk.decode("utf-8", "replace"),
            eof=self.over and end >= size,
        )


def numbered(n: int, first: int = 1) -> bytes:
    return "".join(f"line {i:06d} {'x' * (i % 13)}\n" for i in range(first, first + n)).encode()


# -- LogBuffer -----------------------------------------------------------------------------------


def chunk(data: bytes, start: int, end: int) -> LogChunk:
    return LogChunk(offset=start, next_offset=end, text=data[start:end].decode(), eof=False)


def test_buffer_joins_pages_cut_mid_line() -> None:
    data = numbered(500)
    buf = LogBuffer()
    size = len(data)
    buf.reset(size - 1000, chunk(data, size - 1000, size))
    assert not buf.at_start
    start = buf.start
    while start > 0:
        new = max(0, start - 777)  # page edges fall inside lines
        buf.prepend(chunk(data, new, start))
        start = new
    assert buf.at_start
    assert buf.line_count == 500
    assert "\n".join(buf.lines) == data.decode()
    assert buf.lines[0].startswith("line 000001")


def test_buffer_appends_a_partial_line_then_its_rest() -> None:
    buf = LogBuffer()
    buf.reset(0, LogChunk(offset=0, next_offset=6, text="a\nb\npa", eof=False))
    assert buf.line_count == 3 and buf.lines[-1] == "pa"
    first = buf.append(LogChunk(offset=6, next_offset=13, text="rtial\nc\n", eof=False))
    assert first == 2
    assert buf.lines[: buf.line_count] == ["a", "b", "partial", "c"]
    assert buf.end == 13


def test_buffer_find_both_ways() -> None:
    buf = LogBuffer()
    buf.reset(0, LogChunk(offset=0, next_offset=1, text="alpha\nBeta\ngamma\nbeta two\n", eof=False))
    assert buf.find("beta", -1) == 1
    assert buf.find("beta", 1) == 3
    assert buf.find("beta", 3) is None
    assert buf.find("BETA", 4, forward=False) == 3
    assert buf.find("beta", 3, forward=False) == 1
    assert buf.find("", 0) is None


def test_clean_and_highlight() -> None:
    assert clean("a\tb\r") == "a       b"
    assert clean("bell\x07") == "bell�"
    assert highlight("Loss loss LOSS", "loss") == [(0, 4), (5, 9), (10, 14)]


# -- RunLog against a fake control ------------------------------------------------------------------


class LogApp(App[None]):
    def __init__(self, log: FakeLog, page: int) -> None:
        super().__init__()
        self.log_source = log
        self.page = page

    def compose(self) -> ComposeResult:
        yield RunLog(self.log_source.fetch, page=self.page)

    def on_mount(self) -> None:
        self.query_one(LogView).focus()
        self.query_one(RunLog).poll()


def visible(app: LogApp) -> list[str]:
    view = app.query_one(LogView)
    top = view.scroll_offset.y
    return view.buffer.lines[top : top + view.size.height]


async def test_tail_first_then_home_loads_every_earlier_line() -> None:
    data = numbered(20_000)
    log = FakeLog(data)
    app = LogApp(log, page=8192)
    async with app.run_test(size=(80, 20)) as pilot:
        view = app.query_one(LogView)
        await until(pilot, lambda: view.buffer.line_count > 0, what="the tail")
        assert view.buffer.end == len(data)
        assert not view.buffer.at_start
        await until(
            pilot, lambda: any("line 020000" in line for line in visible(app)), what="the end in view"
        )
        await pilot.press("home")
        await until(pilot, lambda: view.buffer.at_start, timeout=30, what="line 1")
        lines = view.buffer.lines[: view.buffer.line_count]
        assert len(lines) == 20_000
        assert all(line.startswith(f"line {i:06d}") for i, line in enumerate(lines, 1))
        await until(pilot, lambda: visible(app)[0].startswith("line 000001"), what="line 1 in view")
        assert max(limit for _, limit in log.requests) <= 8192


async def test_scrolling_to_the_top_loads_one_earlier_page() -> None:
    data = numbered(3000)
    app = LogApp(FakeLog(data), page=4096)
    async with app.run_test(size=(80, 20)) as pilot:
        view = app.query_one(LogView)
        await until(pilot, lambda: view.buffer.line_count > 0, what="the tail")
        before, first_shown = view.buffer.line_count, None
        await until(pilot, lambda: view.scroll_offset.y > 0, what="the view at the end")
        view.scroll_to(y=0, animate=False, immediate=True)
        await until(pilot, lambda: view.buffer.line_count > before, what="an earlier page")
        first_shown = visible(app)[0]
        # the lines that were at the top stay in view: the scroll moved down by the lines added
        assert view.scroll_offset.y > 0
        assert first_shown == view.buffer.lines[view.scroll_offset.y]


async def test_follow_appends_and_paused_view_stays() -> None:
    log = FakeLog(numbered(50))
    app = LogApp(log, page=4096)
    async with app.run_test(size=(80, 12)) as pilot:
        runlog, view = app.query_one(RunLog), app.query_one(LogView)
        await until(pilot, lambda: view.buffer.line_count == 50, what="the log")
        log.data += numbered(10, first=51)
        runlog.poll()
        await until(pilot, lambda: any("line 000060" in line for line in visible(app)), what="new lines")
        await pilot.press("up", "up")
        assert not view.follow
        top = view.scroll_offset.y
        log.data += numbered(10, first=61)
        runlog.poll()
        await until(pilot, lambda: view.buffer.line_count == 70, what="more lines")
        await pilot.pause()
        assert view.scroll_offset.y == top, "a paused view does not jump"
        await pilot.press("G")
        assert view.follow
        await until(pilot, lambda: any("line 000070" in line for line in visible(app)), what="the end again")


async def test_search_next_previous_and_backwards_past_the_loaded_start() -> None:
    data = numbered(5000)
    log = FakeLog(data, over=True)
    app = LogApp(log, page=4096)
    async with app.run_test(size=(80, 16)) as pilot:
        runlog, view = app.query_one(RunLog), app.query_one(LogView)
        await until(pilot, lambda: view.buffer.line_count > 0, what="the tail")
        assert not view.buffer.at_start
        await pilot.press("slash")
        await pilot.press(*"line 004990")
        await pilot.press("enter")
        await until(pilot, lambda: view.current is not None, what="a match")
        assert view.current is not None
        assert view.buffer.lines[view.current].startswith("line 004990")
        assert view.buffer.lines[view.current] in visible(app)
        await pilot.press("escape")
        assert view.has_focus
        # backwards to a line only in the first page: earlier pages load until it is found
        runlog.search("line 000007 ", forward=False)
        await until(
            pilot,
            lambda: view.current is not None and view.buffer.lines[view.current].startswith("line 000007"),
        )
        assert view.buffer.lines[view.current] in visible(app)
        # the only match: n wraps around to it again
        await pilot.press("n")
        await until(pilot, lambda: "(wrapped)" in str(app.query_one("#log-status").render()))
        assert view.buffer.lines[view.current or 0].startswith("line 000007")
        runlog.search("no such text")
        await until(
            pilot, lambda: "no match for 'no such text'" in str(app.query_one("#log-status").render())
        )


async def test_no_log_yet_then_first_lines() -> None:
    log = FakeLog(b"")
    app = LogApp(log, page=4096)
    async with app.run_test(size=(80, 12)) as pilot:
        runlog, view = app.query_one(RunLog), app.query_one(LogView)
        await until(pilot, lambda: runlog.loaded, what="the first poll")
        assert view.buffer.line_count == 0
        await until(pilot, lambda: "no log yet" in str(app.query_one("#log-status").render()))
        log.data = b"hello\n"
        runlog.poll()
        await until(pilot, lambda: view.buffer.lines[0] == "hello", what="the first line")
