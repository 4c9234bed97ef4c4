"""What the dashboard needs to know at start: where control is, whose space, how it looks and refreshes.

Built by `atom tui` (tui/cli.py) from flags and `ATOM_*` env vars; tests build one directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

THEMES = {"dark": "textual-dark", "light": "textual-light"}


def utcnow() -> datetime:
    return datetime.now(UTC)


class TuiEnv(BaseSettings):
    """The dashboard's own knobs, from `ATOM_TUI_*` env vars (every one has a laptop default)."""

    model_config = SettingsConfigDict(env_prefix="ATOM_TUI_", env_ignore_empty=True, extra="ignore")

    theme: str = Field(default="dark", pattern="^(dark|light)$")
    """`dark` or `light`; ctrl+t switches while running."""

    refresh: float = Field(default=2.0, gt=0)
    """Seconds between live refreshes of the screen in front."""

    page_size: int = Field(default=100, ge=10, le=1000)
    """Runs fetched per request; more pages load as the cursor nears the end."""

    log_page: int = Field(default=256 * 1024, ge=4096, le=4 * 1024 * 1024)
    """Bytes of log fetched per request."""


@dataclass
class TuiConfig:
    """Everything `make_app` needs besides the client."""

    url: str
    """The control URL shown in the header (the client already points there)."""
    space: str = "default"
    theme: str = "dark"
    refresh: float = 2.0
    page_size: int = 100
    log_page: int = 256 * 1024
    embedded: bool = False
    """True when control runs inside this process and stops with the dashboard."""
    clock: Callable[[], datetime] = field(default=utcnow)
    """Now, for durations of running runs (snapshot tests pin it)."""
    live: bool = True
    """Refresh the screen in front every `refresh` seconds (snapshot tests turn it off)."""

    @classmethod
    def from_env(cls, url: str, *, space: str = "default", embedded: bool = False) -> TuiConfig:
        env = TuiEnv()
        return cls(
            url=url,
            space=space,
            theme=env.theme,
            refresh=env.refresh,
            page_size=env.page_size,
            log_page=env.log_page,
            embedded=embedded,
        )
