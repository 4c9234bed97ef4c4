"""Slows password guessing: after `max_failures` wrong logins for one user name, or from one client
address, within `window` seconds, further tries are refused (429) until the window has passed.

Kept in the control process's memory: each control counts its own failures (a restart forgets
them), which bounds guessing to `max_failures` per window per process without a store write per try.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from control.errors import TooManyRequests


class LoginThrottle:
    def __init__(self, *, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        seen = self._failures.setdefault(key, deque())
        while seen and now - seen[0] > self.window:
            seen.popleft()
        return seen

    def check(self, user: str, client: str) -> None:
        """Raise TooManyRequests when `user` or `client` failed `max_failures` times lately."""
        now = time.monotonic()
        with self._lock:
            for key, what in ((f"user:{user.lower()}", f"user {user!r}"), (f"addr:{client}", client)):
                seen = self._recent(key, now)
                if len(seen) >= self.max_failures:
                    wait = int(self.window - (now - seen[0])) + 1
                    raise TooManyRequests(
                        f"too many failed logins for {what}: try again in {wait} s "
                        "(ATOM_LOGIN_MAX_FAILURES, ATOM_LOGIN_WINDOW_S)"
                    )

    def failed(self, user: str, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in (f"user:{user.lower()}", f"addr:{client}"):
                self._recent(key, now).append(now)
            if len(self._failures) > 10_000:  # forget keys with no recent failure
                for key in [k for k, v in self._failures.items() if not self._recent(k, now)]:
                    del self._failures[key]

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{user.lower()}", None)
