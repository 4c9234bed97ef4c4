"""The stand-in API server's runner: the handler of apiserver.py on a free loopback port, served
from its own thread and event loop, and a kubeconfig that points the official client at it."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kmock import Server
from kmock._internal import parsing

from tests.k8s_sim.apiserver import ApiServer

_parse_path = parsing.parse_path


def _parse_namespaces_too(path: str) -> parsing.ParsedPath:
    """kmock 0.8 reads `/api/v1/namespaces[/NAME[/SUB]]` as a namespace prefix with no resource
    (a list of namespaces fails to parse); read it as the `namespaces` resource it is."""
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and (
        len(parts) <= 4 or parts[4:] in (["status"], ["finalize"])
    ):
        name = parts[3] if len(parts) > 3 else None
        return parsing.ParsedPath("", "v1", "namespaces", None, name, parts[4] if len(parts) > 4 else None)
    return _parse_path(path)


parsing.parse_path = _parse_namespaces_too


class KubeApi:
    """The stand-in API server on a free loopback port, served from its own thread."""

    def __init__(self) -> None:
        self.handler = ApiServer()
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="kube-api", daemon=True)

    def _serve(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with self.handler, Server(self.handler) as server:
                self.url = f"http://127.0.0.1:{server.port}"
                self._ready.set()
                await self._stop.wait()
                await self.handler.close_streams()

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported to the starter
            self._failed = exc
            self._ready.set()

    def start(self) -> KubeApi:
        self._thread.start()
        if not self._ready.wait(30) or self._failed is not None:
            raise RuntimeError(f"the stand-in API server did not start: {self._failed}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the server's loop (to read or change the store consistently)."""
        assert self._loop is not None

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig whose current context points the official client at this server."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sim", "cluster": {"server": self.url}}],
            "users": [{"name": "sim", "user": {"token": "sim-token"}}],
            "contexts": [
                {"name": "sim", "context": {"cluster": "sim", "user": "sim", "namespace": namespace}}
            ],
            "current-context": "sim",
        }
        path.write_text(json.dumps(config, indent=2))
        return path

    def __enter__(self) -> KubeApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
