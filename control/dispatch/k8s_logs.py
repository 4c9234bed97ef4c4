"""Pod logs for the Kubernetes adapter: followed while a container runs, kept once it has ended.

A pod's log lives on its node and goes with the pod: what an agent printed just before a stop
deleted its Job would be lost to a reader that comes a moment late. So the log of a running
container is followed (`read_namespaced_pod_log(follow=True)`, one thread per container, ending
with it) and kept here; a container that had already ended is read once. Readers get the text of
every pod of a run, oldest first (a Job's retries each have their own pod).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

logger = logging.getLogger(__name__)
Key = tuple[str, str]


def _container_state(pod: dict[str, Any], container: str) -> str:
    """`running`, `terminated`, `waiting`, or "" when the kubelet has not reported it."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container:
            state = cs.get("state") or {}
            for name in ("running", "terminated", "waiting"):
                if state.get(name) is not None:
                    return name
    return ""


class PodLogs:
    """Log text per pod, followed from a running container (see the module docstring)."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self._lock = threading.Lock()
        self._text: dict[Key, bytearray] = {}
        self._done: set[Key] = set()
        self._threads: dict[Key, threading.Thread] = {}
        self._responses: dict[Key, Any] = {}
        self._closed = False

    def text(self, namespace: str, pods: list[dict[str, Any]], container: str) -> str | None:
        """The logs of `pods` (one run's or service's), or None while none has any."""
        parts = []
        for pod in sorted(pods, key=lambda p: str(p["metadata"].get("creationTimestamp") or "")):
            key = (namespace, str(pod["metadata"]["name"]))
            state = _container_state(pod, container)
            with self._lock:
                known = key in self._text
                following = key in self._threads
            if not known and state == "running" and not following:
                self._follow(key, container)
            elif not known and state == "terminated":
                self._read_once(key, container)
            with self._lock:
                if key in self._text:
                    parts.append(bytes(self._text[key]))
        if not parts:
            return None
        return b"".join(parts).decode("utf-8", "replace")

    def _read_once(self, key: Key, container: str) -> None:
        from kubernetes.client import ApiException

        try:
            data = self.core.read_namespaced_pod_log(
                key[1], key[0], container=container, _preload_content=False
            ).data
        except ApiException as exc:
            if exc.status not in (400, 404):
                logger.warning("could not read the log of pod %s/%s: %s", *key, exc.status)
            return
        with self._lock:
            self._text[key] = bytearray(data)
            self._done.add(key)

    def _follow(self, key: Key, container: str) -> None:
        with self._lock:
            if self._closed or key in self._threads:
                return
            self._text[key] = bytearray()
            thread = threading.Thread(
                target=self._run, args=(key, container), name=f"k8s-log-{key[1]}", daemon=True
            )
            self._threads[key] = thread
        thread.start()

    def _run(self, key: Key, container: str) -> None:
        try:
            resp = self.core.read_namespaced_pod_log(  # no read timeout: a quiet agent is fine
                key[1],
                key[0],
                container=container,
                follow=True,
                _preload_content=False,
                _request_timeout=(5.0, None),
            )
            with self._lock:
                self._responses[key] = resp
            for chunk in resp.stream(8192, decode_content=True):
                with self._lock:
                    self._text[key].extend(chunk)
        except Exception as exc:  # noqa: BLE001 - the pod went, or the reader was closed
            logger.debug("following the log of pod %s/%s ended: %s", *key, exc)
        finally:
            with self._lock:
                self._responses.pop(key, None)
                self._done.add(key)

    def settle(self, namespace: str, pods: list[dict[str, Any]], wait: float = 5.0) -> None:
        """Wait (a little) until the followers of `pods`, which have ended, have read everything."""
        for pod in pods:
            thread = self._threads.get((namespace, str(pod["metadata"]["name"])))
            if thread is not None:
                thread.join(wait)

    def following(self, namespace: str, pods: list[dict[str, Any]]) -> bool:
        """Is a follower of one of `pods` still reading (its container may have more to say)?"""
        with self._lock:
            threads = [self._threads.get((namespace, str(p["metadata"]["name"]))) for p in pods]
        return any(t is not None and t.is_alive() for t in threads)

    def forget(self, namespace: str, pods: list[dict[str, Any]]) -> None:
        """Drop the text of `pods` once control has copied it (their followers have ended)."""
        with self._lock:
            for pod in pods:
                key = (namespace, str(pod["metadata"]["name"]))
                if key in self._done:
                    self._text.pop(key, None)
                    self._threads.pop(key, None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            responses = list(self._responses.values())
            threads = list(self._threads.values())
        for resp in responses:
            try:
                resp.shutdown()
            except Exception:  # noqa: BLE001 - it may be closing by itself
                logger.debug("closing a log stream failed", exc_info=True)
        for thread in threads:
            thread.join(5)
