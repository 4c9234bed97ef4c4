"""Per-invocation state of the CLI: where control is, the space, the consoles, and usage errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console

from connectors.errors import ConfigError
from control.client import KINDS, AsyncControlClient

if TYPE_CHECKING:
    import httpx

#: other spellings people type for each resource kind
KIND_ALIASES: dict[str, str] = {
    "connection": "connections",
    "conn": "connections",
    "source": "sources",
    "data-sources": "sources",
    "datasources": "sources",
    "operator": "operators",
    "op": "operators",
    "model": "models",
    "service-info": "service-infos",
    "serviceinfo": "service-infos",
    "serviceinfos": "service-infos",
    "service_infos": "service-infos",
    "si": "service-infos",
    "experiment": "experiments",
    "exam": "exams",
    "node": "nodes",
}


class UsageError(ConfigError):
    """A command line Atom cannot act on (exit code 2)."""


def id_arg(text: str, what: str = "run") -> int:
    """A numeric id typed on the command line (`what`: the thing it names, for the error)."""
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{what} id must be a number, got {text!r}") from None


def normalize_kind(kind: str) -> str:
    """Map a kind as typed (`node`, `serviceInfos`, `si` ...) to its `KINDS` key.

    Raises:
        UsageError: the kind is not one Atom knows.
    """
    low = kind.strip().lower()
    if low in KINDS:
        return low
    if low in KIND_ALIASES:
        return KIND_ALIASES[low]
    raise UsageError(f"unknown kind {kind!r}: valid kinds are {', '.join(KINDS)}")


async def missing_space(client: AsyncControlClient, space: str, exc: Exception) -> bool:
    """True when `exc` is a 404 because `space` itself does not exist (a fresh install)."""
    if getattr(exc, "status_code", None) != 404:
        return False
    return not any(s.get("spaceName") == space for s in await client.list_spaces())


def no_space_note(space: str) -> str:
    return f"space {space!r} does not exist yet: `atom apply` or `atom quickstart` creates it"


def parse_pairs(pairs: list[str] | None, option: str) -> dict[str, str]:
    """Turn `["K=V", ...]` into a dict; refuse an item with no `=`."""
    result: dict[str, str] = {}
    for item in pairs or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} {item!r}: expected KEY=VALUE")
        result[key.strip()] = value
    return result


@dataclass
class Context:
    """What every command gets: the resolved control URL, credentials, space and consoles."""

    url: str
    token: str | None = None
    space: str = "default"
    debug: bool = False
    transport: httpx.AsyncBaseTransport | None = None
    """Tests pass an `httpx.MockTransport` or `httpx.ASGITransport` here."""
    embedded: bool = False
    """True when control runs inside this command and stops when it ends."""
    startup_s: float = 0.0
    """Seconds spent starting the embedded server (0 when none was started)."""
    out: Console = field(default_factory=Console)
    err: Console = field(default_factory=lambda: Console(stderr=True))

    def client(self, *, timeout: float = 30.0) -> AsyncControlClient:
        return AsyncControlClient(self.url, token=self.token, transport=self.transport, timeout=timeout)
