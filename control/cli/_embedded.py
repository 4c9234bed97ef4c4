"""Where the CLI finds control: the URL given, a server already on the local port, or one it starts.

The embedded server is uvicorn running `control.api.app.create_app(settings)` on a
free 127.0.0.1 port in a background thread, for as long as one command runs. Only
this module imports the server side (FastAPI, SQLAlchemy), and only when needed.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from control.errors import ControlUnreachable

if TYPE_CHECKING:
    from control.settings import Settings

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT = 60.0


@dataclass
class Resolved:
    url: str
    token: str | None
    embedded: bool
    startup_s: float = 0.0


def probe(url: str, *, timeout: float = 0.5) -> bool:
    """True when a control server answers `GET {url}/healthz` with 2xx."""
    try:
        resp = httpx.get(f"{url.rstrip('/')}/healthz", timeout=timeout)
    except httpx.HTTPError:
        return False
    return resp.is_success


class EmbeddedServer:
    """Control in a background thread of this process, on a port chosen by the OS.

    Args:
        settings: the server's settings; `port` is replaced by the port bound here so
            that agents call back the right address.
        log_level: uvicorn's log level.
    """

    def __init__(self, settings: Settings, *, log_level: str = "warning") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        port = self._sock.getsockname()[1]
        self.settings = settings.model_copy(update={"host": "127.0.0.1", "port": port})
        self.url = f"http://127.0.0.1:{port}"
        self._log_level = log_level
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Start serving; return once the app's lifespan has started.

        Raises:
            ControlUnreachable: the server stopped during startup or did not start in time.
        """
        # deferred: FastAPI, SQLAlchemy and the store load only when a server is embedded
        import uvicorn

        from control.api.app import create_app

        app = create_app(self.settings)
        config = uvicorn.Config(app, log_config=None, log_level=self._log_level, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="atom-embedded-control", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                detail = f"{type(self._error).__name__}: {self._error}" if self._error else "startup failed"
                raise ControlUnreachable(self.url, f"embedded server: {detail}")
            time.sleep(0.02)

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # reported by start(); a thread has nobody else to tell
            self._error = exc
            logger.debug("embedded control server crashed", exc_info=True)

    def stop(self, timeout: float = 15.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()


@contextlib.contextmanager
def control_url(url: str | None, token: str | None, *, debug: bool = False) -> Iterator[Resolved]:
    """Yield where to reach control for one command.

    `url` wins when given. Otherwise a server already answering on the local port
    (`ATOM_PORT`, default 8470) is reused, and failing that an embedded one runs until
    the block ends.
    """
    from control.cli._credentials import stored_token

    if url:
        yield Resolved(url.rstrip("/"), token or stored_token(url), embedded=False)
        return
    from control.settings import Settings

    settings = Settings()
    local = f"http://127.0.0.1:{settings.port}"
    api_token = settings.api_token.get_secret_value() if settings.api_token else None
    api_token = api_token or stored_token(local)  # `atom login`'s token for the local control
    if probe(local):
        yield Resolved(local, token or api_token, embedded=False)
        return
    began = time.perf_counter()
    server = EmbeddedServer(settings, log_level="info" if debug else "warning")
    server.start()
    try:
        yield Resolved(server.url, token or api_token, embedded=True, startup_s=time.perf_counter() - began)
    finally:
        server.stop()
