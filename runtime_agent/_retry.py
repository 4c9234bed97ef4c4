"""Retrying the agent's calls to control through an outage: backoff policy and link state.

Control may restart while a run goes on (it runs elsewhere on a Ray cluster or in a pod), so
every call the agent makes is retried on transient failures (no answer, a timeout, 502/503/504)
with capped exponential backoff and jitter, for `RetryPolicy.window` seconds counted from the
moment control stopped answering. Any other answer (a 4xx, a 500) is final at once.

`ControlLink` logs one warning when control becomes unreachable and one info line when it
answers again, never one line per attempt. A call waiting to retry tries again as soon as any
other call (a heartbeat) gets an answer, instead of sleeping out its backoff delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from control.errors import ControlAPIError, ControlUnreachable

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: HTTP answers that mean "a proxy or control itself is not ready yet": worth retrying
TRANSIENT_STATUS = frozenset({502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to retry a call to control.

    Attributes:
        window: seconds to keep retrying, counted from when control stopped answering
            (`ATOM_CONTROL_RETRY_WINDOW`); 0 tries once.
        first: the first delay in seconds.
        factor: each delay is the previous one times this.
        cap: no delay is longer than this.
        jitter: each delay is shortened by a random fraction of itself up to this (0 to 1),
            so agents of many runs do not call at the same instant.
    """

    window: float = 600.0
    first: float = 0.5
    factor: float = 2.0
    cap: float = 15.0
    jitter: float = 0.2

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The delays between attempts, endlessly: first, first*factor, ... up to cap, jittered."""
        pick = rng or random
        delay = self.first
        while True:
            yield delay * (1 - self.jitter * pick.random())
            delay = min(delay * self.factor, self.cap)


def is_transient(exc: BaseException) -> bool:
    """True for a failure that a later attempt may not have: no answer, a timeout, 502/503/504."""
    if isinstance(exc, ControlUnreachable):
        return True
    return isinstance(exc, ControlAPIError) and exc.status_code in TRANSIENT_STATUS


class ControlLink:
    """Whether control answers, and the retry loop every agent call goes through.

    Args:
        url: control's URL (named in the log lines).
        policy: the retry policy.
        clock: a monotonic clock in seconds.
    """

    def __init__(
        self,
        url: str,
        policy: RetryPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self.down_since: float | None = None
        """When control stopped answering (None: it answers)."""
        self._next_probe = 0.0
        self._probe_delays = self.policy.delays()
        self._answered = asyncio.Event()
        self._answered.set()

    @property
    def up(self) -> bool:
        """True unless the last call found control unreachable."""
        return self.down_since is None

    def probe_due(self) -> bool:
        """While control is down: whether a best-effort call may try again now (backoff paced)."""
        return self.down_since is None or self._clock() >= self._next_probe

    def deadline(self) -> float:
        """When calls stop retrying: the window's end, counted from the outage's start."""
        start = self.down_since if self.down_since is not None else self._clock()
        return start + self.policy.window

    def mark_down(self, exc: BaseException, what: str) -> None:
        """Record a transient failure; the first of an outage logs one warning."""
        now = self._clock()
        if self.down_since is None:
            self.down_since = now
            self._probe_delays = self.policy.delays()
            self._answered.clear()
            logger.warning(
                "control at %s is unreachable (%s while sending %s); retrying for up to %.0f s",
                self.url,
                _short(exc),
                what,
                self.policy.window,
            )
        self._next_probe = now + next(self._probe_delays)

    def mark_up(self) -> None:
        """Record an answer; the first after an outage logs one info line."""
        if self.down_since is not None:
            logger.info("control at %s answers again after %.1f s", self.url, self._clock() - self.down_since)
            self.down_since = None
            self._answered.set()

    async def once(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """One attempt: updates the link state; raises what the call raised."""
        try:
            result = await call()
        except ControlAPIError as exc:
            if is_transient(exc):
                self.mark_down(exc, what)
            else:
                self.mark_up()  # control answered, with a no
            raise
        self.mark_up()
        return result

    async def call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call()` until it succeeds, retrying transient failures until the window ends.

        Args:
            what: what is sent, for the log line (`model version`, `state running`).
            call: makes one attempt (a fresh request each time).

        Raises:
            ControlAPIError: a final answer (4xx, 500), or the last transient failure once
                the window has ended.
        """
        delays = self.policy.delays()
        waiting = False
        while True:
            try:
                return await self.once(what, call)
            except ControlAPIError as exc:
                if not is_transient(exc):
                    raise
                now = self._clock()
                end = self.deadline()
                if not waiting and now < end:
                    waiting = True
                    logger.info("%s waits for control (retrying for up to %.0f s more)", what, end - now)
                if now >= end:
                    logger.error(
                        "control at %s did not answer for %.0f s; giving up sending %s",
                        self.url,
                        now - (self.down_since or now),
                        what,
                    )
                    raise
                # the next attempt comes after the delay, or as soon as any call gets an answer
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._answered.wait(), min(next(delays), end - now))


def _short(exc: BaseException) -> str:
    if isinstance(exc, ControlUnreachable):
        return str(exc.__cause__.__class__.__name__) if exc.__cause__ is not None else "no answer"
    if isinstance(exc, ControlAPIError):
        return f"HTTP {exc.status_code}"
    return type(exc).__name__
