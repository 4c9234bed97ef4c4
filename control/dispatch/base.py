"""The adapter interface (seed 003): start, stop and describe a run; describe resources."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


@dataclass(frozen=True)
class Launch:
    """What an adapter needs to start one agent: a run (`atom-runtime run`) or a service (`serve`)."""

    kind: str
    ident: int
    argv: list[str]
    env: dict[str, str] = field(repr=False)
    log_path: Path
    cwd: Path | None = None


@dataclass(frozen=True)
class Observed:
    """What the adapter sees of a started agent."""

    alive: bool
    exit_code: int | None = None
    detail: str = ""


class Adapter(abc.ABC):
    name: ClassVar[str]

    @abc.abstractmethod
    async def start(self, launch: Launch) -> str:
        """Start the agent; return its external id (pid, Ray job id, pod name)."""

    @abc.abstractmethod
    async def stop(self, external_id: str, *, grace: float = 10.0) -> None:
        """Ask the agent to stop (SIGTERM), then force it after `grace` seconds."""

    @abc.abstractmethod
    async def describe(self, external_id: str) -> Observed:
        """Is it alive, and if not, how did it end?"""

    async def describe_resources(self) -> dict[str, Any]:
        return {}

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the adapter holds (not the agents it started)."""
