"""`BodyLimit`: a pure ASGI middleware refusing request bodies over a limit with 413.

The declared `Content-Length` is checked before the app runs; a body sent without one (chunked)
is counted as it streams, and the app's own answer is replaced by the 413 once the count passes
the limit, so nothing over the limit is ever parsed or stored. Operator code uploads
(`POST /api/v1/code`) have their own, larger limit.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from control.code_store import human

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CODE_UPLOAD = ("POST", "/api/v1/code")


class BodyTooLarge(Exception):
    """Raised into the app by `receive` once the streamed body passes the limit."""


class BodyLimit:
    """Refuse request bodies over `max_bytes` (code uploads: over `code_max_bytes`) with 413.

    Args:
        app: the ASGI app to guard.
        max_bytes: the limit for every request body (`ATOM_MAX_BODY_BYTES`).
        code_max_bytes: the limit for `POST /api/v1/code` (`ATOM_CODE_MAX_BYTES`).
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, code_max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.code_max_bytes = code_max_bytes

    def limit_for(self, scope: Scope) -> tuple[int, str]:
        if (scope.get("method"), scope.get("path", "").rstrip("/")) == CODE_UPLOAD:
            return self.code_max_bytes, "ATOM_CODE_MAX_BYTES"
        return self.max_bytes, "ATOM_MAX_BODY_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, knob = self.limit_for(scope)
        declared = content_length(scope)
        if declared is not None and declared > limit:
            await refuse(
                send,
                f"request body of {declared} bytes is over the limit of {human(limit)} "
                f"({knob}={limit}): send less or raise the limit",
            )
            return

        seen = 0
        over = False
        started = False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    raise BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # whatever the app answers to the cut body, the caller gets the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, counted, guarded)
        if over and not started:
            await refuse(
                send,
                f"request body is over the limit of {human(limit)} ({knob}={limit}): "
                "send less or raise the limit",
            )


def content_length(scope: Scope) -> int | None:
    """The declared body size; None when absent or not a plain number (the server refuses those)."""
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() else None
    return None


async def refuse(send: Send, msg: str) -> None:
    body = json.dumps({"msg": msg}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
