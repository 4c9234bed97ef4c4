"""Shipping the agent's output to control, for runs whose log control cannot read from its own disk.

With `ATOM_LOG_SHIP=1` (control sets it for agents it starts in a Ray job, a container or a pod)
`atom-runtime run` copies everything written to its stdout and stderr (its log records, operator
prints, child processes' output) to control in batches, `POST /api/v1/agent/runs/{id}/logs` with
`{offset, text}`: control appends only the bytes beyond what it holds, so a batch sent again is
harmless. The output still reaches the original stdout / stderr unchanged (what the target collects).

Two threads do the work, so nothing waits on control: a reader forwards the output and keeps it in a
bounded buffer (the oldest bytes go when it is full and control has been away long; control marks the
gap), and a sender posts a batch every `interval` seconds, backing off while control does not answer.
At exit the rest is sent, waiting at most `exit_wait` seconds for control. Secrets the agent
registered (`runtime_agent.logs.add_secret`) are masked in every complete line before it is kept.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import logging
import os
import select
import sys
import threading
import time
from typing import TYPE_CHECKING

import httpx

from runtime_agent.logs import redact

if TYPE_CHECKING:
    from runtime_agent.settings import AgentSettings

logger = logging.getLogger(__name__)

BATCH_BYTES = 256 * 1024
"""The most output one request carries."""
MAX_PARTIAL = 64 * 1024
"""An unfinished line is kept as it is once it grows this long (a progress bar without newlines)."""
BACKOFF_MAX = 30.0


def _char_start(data: bytes | bytearray, cut: int) -> int:
    """`cut` moved back to the start of the UTF-8 character it falls in."""
    while 0 < cut < len(data) and data[cut] & 0xC0 == 0x80:
        cut -= 1
    return cut


class LogShipper:
    """Copies this process's stdout and stderr to control (see the module docstring).

    Args:
        control_url: control's base URL.
        run_id: the run whose log this is.
        token: the run's token (never logged).
        interval: seconds between two batches.
        max_buffer: bytes kept while control does not answer; beyond, the oldest go.
        exit_wait: seconds `close` waits for control to take the rest.
        fds: the file descriptors to copy (default stdout and stderr).
    """

    def __init__(
        self,
        control_url: str,
        run_id: int,
        token: str,
        *,
        interval: float = 1.0,
        max_buffer: int = 16 * 1024 * 1024,
        exit_wait: float = 30.0,
        fds: tuple[int, ...] = (1, 2),
    ) -> None:
        self.url = f"{control_url.rstrip('/')}/api/v1/agent/runs/{run_id}/logs"
        self.run_id = run_id
        self.interval = interval
        self.max_buffer = max(max_buffer, BATCH_BYTES)
        self.exit_wait = exit_wait
        self.fds = fds
        self._http = httpx.Client(timeout=10.0, headers={"Authorization": f"Bearer {token}"})
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._decoders: dict[int, codecs.IncrementalDecoder] = {}
        self._partial = ""
        self._buf = bytearray()
        self._base = 0
        """Offset in this process's output of `_buf[0]`."""
        self._origin: int | None = None
        """Where this process's output starts in the run's shipped log (an earlier attempt's ends)."""
        self.dropped = 0
        self._saved: dict[int, int] = {}
        self._reads: dict[int, int] = {}
        self._stopping = threading.Event()
        self._closed = threading.Event()
        self._dead = False
        self._reader: threading.Thread | None = None
        self._pid = os.getpid()
        self._sender: threading.Thread | None = None

    @property
    def pending(self) -> int:
        """Bytes of output control has not taken yet."""
        with self._lock:
            return len(self._buf) + len(self._partial.encode("utf-8"))

    # -- output ---------------------------------------------------------------------------------

    def start(self) -> LogShipper:
        """Start copying the output (and register `close` to run at exit)."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd in self.fds:
            read, write = os.pipe()
            self._saved[fd] = os.dup(fd)
            os.dup2(write, fd)
            os.close(write)
            self._reads[read] = self._saved[fd]
            self._decoders[read] = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._reader = threading.Thread(target=self._read_loop, name="atom-log-reader", daemon=True)
        self._sender = threading.Thread(target=self._send_loop, name="atom-log-sender", daemon=True)
        self._reader.start()
        self._sender.start()
        atexit.register(self.close)
        return self

    def _read_loop(self) -> None:
        open_fds = list(self._reads)
        while open_fds:
            try:
                ready, _, _ = select.select(open_fds, [], [], 0.2)
            except InterruptedError:
                continue
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    open_fds.remove(fd)
                    continue
                _write_all(self._reads[fd], chunk)
                self._keep(self._decoders[fd].decode(chunk))
            if not ready and self._stopping.is_set():
                return  # drained: what children still hold open is not ours to wait for

    def _keep(self, text: str) -> None:
        """Mask secrets in complete lines and keep them (never logs: this thread drains the pipe)."""
        with self._lock:
            text = self._partial + text
            head, sep, tail = text.rpartition("\n")
            if sep:
                self._append(redact(head + sep))
            if len(tail) >= MAX_PARTIAL:
                self._append(redact(tail))
                tail = ""
            self._partial = tail
        if len(self._buf) >= BATCH_BYTES:
            self._wake.set()

    def _append(self, text: str) -> None:
        self._buf += text.encode("utf-8")
        cut = len(self._buf) - self.max_buffer
        if cut > 0:  # the oldest go, from a character's start on: control marks the gap
            while cut < len(self._buf) and self._buf[cut] & 0xC0 == 0x80:
                cut += 1
            del self._buf[:cut]
            self._base += cut
            self.dropped += cut

    def _flush_partial(self) -> None:
        with self._lock:
            if self._partial:
                self._append(redact(self._partial))
                self._partial = ""

    # -- sending --------------------------------------------------------------------------------

    def _send_loop(self) -> None:
        delay, retry_at = 0.0, 0.0
        warned = False
        while not self._closed.is_set():
            self._wake.wait(max(self.interval, delay))
            self._wake.clear()
            if self._closed.is_set():
                return
            if time.monotonic() < retry_at:
                continue  # a full batch woke it while control is away: keep backing off
            self._flush_partial()
            try:
                while self._send_one():
                    pass
            except httpx.HTTPError as exc:
                delay = min(BACKOFF_MAX, max(self.interval, delay * 2 or 1.0))
                retry_at = time.monotonic() + delay
                if not warned:
                    warned = True
                    logger.warning(
                        "control does not take the log (%s); the output is kept and sent later", exc
                    )
                continue
            if warned:
                logger.info("control takes the log again")
            delay, warned = 0.0, False

    def _send_one(self) -> bool:
        """Send one batch; True if more is waiting. Raises httpx.HTTPError while control is away."""
        if self._dead:
            return False
        if self._origin is None:
            self._origin = self._post(0, "")
        with self._lock:
            cut = _char_start(self._buf, min(len(self._buf), BATCH_BYTES))
            data, base = bytes(self._buf[:cut]), self._base
        if not data:
            return False
        got = self._post(self._origin + base, data.decode("utf-8"))
        with self._lock:
            done = min(max(got - self._origin - self._base, 0), len(self._buf))
            del self._buf[:done]
            self._base += done
            return bool(self._buf)

    def _post(self, offset: int, text: str, *, final: bool = False) -> int:
        resp = self._http.post(self.url, json={"offset": offset, "text": text, "final": final})
        if resp.status_code >= 500 or resp.status_code in (408, 429):  # away, or busy: later
            raise httpx.HTTPStatusError(
                f"control answered {resp.status_code}", request=resp.request, response=resp
            )
        if resp.status_code != 200:  # a refused token or run: sending again cannot help
            self._dead = True
            with self._lock:
                self._buf.clear()
            logger.warning("control refuses this run's log (%s); it is no longer sent", resp.status_code)
            return offset
        return int(resp.json()["received"])

    # -- end ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop copying, then send what is left (waiting at most `exit_wait` s for control)."""
        if self._closed.is_set() or self._reader is None or os.getpid() != self._pid:
            return  # closed, never started, or a forked child's exit: the parent ships its output
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)
        self._stopping.set()
        self._reader.join(timeout=5)
        self._closed.set()
        self._wake.set()
        if self._sender is not None:
            self._sender.join(timeout=self.exit_wait)
        for decoder in self._decoders.values():
            if tail := decoder.decode(b"", final=True):
                self._keep(tail)
        self._flush_partial()
        deadline = time.monotonic() + self.exit_wait
        delay = 0.5
        while time.monotonic() < deadline:
            try:
                while self._send_one():
                    pass
                if self._origin is not None and not self._dead:
                    self._post(self._origin + self._base, "", final=True)  # readers may stop at its end
                break
            except httpx.HTTPError:
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 5.0)
        if self._buf and not self._dead:
            logger.warning(
                "control did not take the last %d bytes of the log before the agent exited", len(self._buf)
            )
        self._http.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except InterruptedError:
            continue
        except OSError:
            return  # the original output is gone (a closed pipe): shipping goes on


def ship_output(settings: AgentSettings) -> LogShipper | None:
    """Start shipping this run agent's output when `ATOM_LOG_SHIP` asks for it (None otherwise)."""
    if not settings.log_ship or not settings.control_url or settings.run_id is None or not settings.run_token:
        return None
    return LogShipper(
        settings.control_url,
        settings.run_id,
        settings.run_token.get_secret_value(),
        interval=settings.log_ship_interval,
        max_buffer=settings.log_ship_buffer_bytes,
        exit_wait=settings.log_ship_exit_wait,
    ).start()
