"""The dashboard's one way to control: `AsyncControlClient` calls that also keep the trouble banner true.

Every screen calls `await api.call(lambda c: c.list_runs(...))` from a worker. A call that cannot
reach control, or is refused for its token, raises `Unavailable` after telling the app (which
shows the banner and probes until control answers again); any other `ControlAPIError` is the
caller's to show (a form puts `exc.fields` beside its fields).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from control.client import AsyncControlClient
from control.errors import ControlAPIError, ControlUnreachable
from tui.errors import Unavailable

T = TypeVar("T")


@dataclass(frozen=True)
class Trouble:
    """Why control cannot be used right now, in one line a person can act on."""

    kind: str
    """`unreachable` or `auth`."""
    message: str


def classify(exc: Exception, url: str) -> Trouble | None:
    """The banner-worthy trouble behind `exc`, or None when it is an ordinary API answer."""
    if isinstance(exc, ControlUnreachable):
        return Trouble("unreachable", f"control at {url} is not answering; retrying (is `atom server` up?)")
    if isinstance(exc, ControlAPIError) and exc.status_code == 401:
        # the token itself is refused; a 403 is an answer (this token may not do that one thing)
        return Trouble(
            "auth", f"control at {url} refused the token (401): {exc}; run `atom login` or set ATOM_TOKEN"
        )
    return None


class Api:
    """A client plus the app's trouble hooks.

    Args:
        client: the shared client (the CLI's class).
        on_trouble: called with the trouble when a call fails for want of control.
        on_ok: called after every call that reached control and was accepted.
    """

    def __init__(
        self,
        client: AsyncControlClient,
        *,
        on_trouble: Callable[[Trouble], None] | None = None,
        on_ok: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self._on_trouble = on_trouble
        self._on_ok = on_ok

    @property
    def url(self) -> str:
        return self.client.base_url

    async def call(self, fn: Callable[[AsyncControlClient], Awaitable[T]]) -> T:
        """Run one client call.

        Raises:
            Unavailable: control is unreachable or refused the token (the banner shows why).
            ControlAPIError: control answered with another error (e.g. 422 with `fields`).
        """
        try:
            result = await fn(self.client)
        except (ControlUnreachable, ControlAPIError) as exc:
            trouble = classify(exc, self.url)
            if trouble is None:
                if self._on_ok:
                    self._on_ok()
                raise
            if self._on_trouble:
                self._on_trouble(trouble)
            raise Unavailable(trouble.message, kind=trouble.kind) from exc
        if self._on_ok:
            self._on_ok()
        return result
