"""Control's settings: one pydantic-settings class, built at the entry point and passed down.

Every knob works on a laptop as it is; production values come from `ATOM_*` env vars
or a `.env`-style file named by `ATOM_CONFIG`.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """The user data directory: `$XDG_DATA_HOME/atom` or `~/.local/share/atom`."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "atom"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ATOM_",
        env_nested_delimiter="__",
        env_ignore_empty=True,
        env_file=os.environ.get("ATOM_CONFIG"),
        extra="ignore",
    )

    home: Path = Field(default_factory=default_home)
    """Where the SQLite store, run directories, logs and models live."""

    db_url: str | None = None
    """SQLAlchemy URL of the store; None: SQLite (WAL) at `{home}/atom.db`. MySQL: `mysql+pymysql://...`."""

    host: str = "127.0.0.1"
    port: int = 8470
    public_url: str | None = None
    """The URL agents use to call back; None: `http://{host}:{port}`."""

    secret_key: SecretStr | None = None
    """Fernet key that encrypts connection passwords; None: generated once into `{home}/secret.key`."""

    api_token: SecretStr | None = None
    """When set, every user call must send `Authorization: Bearer <token>`."""

    heartbeat_timeout: float = 60.0
    """A running run whose agent has not sent a heartbeat for this long is failed."""

    reconcile_interval: float = 2.0
    """Seconds between reconcile passes."""

    service_ready_timeout: float = 120.0
    """An inference service not ready within this many seconds is failed."""

    service_port_range: tuple[int, int] = (18500, 18999)
    """Local ports handed to inference services started as processes."""

    python: str | None = None
    """The Python that runs agents and services; None: the one running control."""

    code_max_bytes: int = Field(default=4 * 1024**3, ge=1)
    """The largest operator code bundle `POST /api/v1/code` stores (bytes); a larger one is refused (413)."""

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home / 'atom.db'}"

    @property
    def callback_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def services_dir(self) -> Path:
        return self.home / "services"
