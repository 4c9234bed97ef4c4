"""`AgentSettings`: the runtime agent's configuration, read once from `ATOM_*` env at the entry point.

Control creates the per-run directories and passes them in the environment (see
`runtime_agent.__main__` for the full protocol). With no control (`run --spec`, `dev`,
`AgentRunner`) every directory defaults to `.atom/run-<id>/<name>` under the working directory.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AgentSettings(BaseSettings):
    """Settings for one agent process (`run`, `dev` or `serve`)."""

    model_config = SettingsConfigDict(env_prefix="ATOM_", env_ignore_empty=True, extra="ignore")

    control_url: str | None = None
    """Control's base URL; None runs without control (callbacks become log lines)."""
    run_token: SecretStr | None = None
    """Bearer token for the agent's calls on its run; never logged."""
    service_token: SecretStr | None = None
    """Bearer token for `serve --service-id` to fetch its ServeSpec; never logged."""
    run_id: int | None = None
    """The runtime id, when not given as `--run-id`."""
    data_dir: Path | None = None
    """Per-run working directory (Ray Train storage, FILE models with no base dir)."""
    model_dir: Path | None = None
    """Where the operator writes its model (`ctx.model_dir`)."""
    log_dir: Path | None = None
    summary_dir: Path | None = None
    share_dir: Path | None = None
    model_name: str | None = None
    model_version: str | None = None
    heartbeat_interval: float = 5.0
    """Seconds between heartbeats; the response can ask the run to stop."""
    control_retry_window: float = 600.0
    """Seconds the agent keeps retrying a call while control does not answer (a restart, a network
    outage), counted from when it stopped answering; then the call fails. 0: try once."""
    ray_num_cpus: int | None = None
    """CPUs for the local Ray instance (None: all); ignored when RAY_ADDRESS names a cluster."""
    train_executor: str = "auto"
    """How a train_loop runs: `direct` (in the agent process), `ray` (Ray Train on RAY_ADDRESS's
    cluster), or `auto` (direct for one planned worker, else ray); environmentConf
    `trainExecutor` overrides it."""
    sink_flush_rows: int = 50_000
    """Emitted rows buffered before they are staged in the sinks."""
    cache_dir: Path | None = None
    """The shared download cache for HTTP/S3/OSS files (default ~/.cache/atom/files); give every
    agent on a host the same directory (a hostPath volume on Kubernetes) so each object downloads once."""
    cache_max_bytes: int | None = None
    """The cache's size limit in bytes (default 20 GiB); least-recently-used unpinned files go first."""
    code_cache: Path | None = None
    """Where fetched operator code is kept by content (git commit, pip requirement, bundle digest);
    default ~/.cache/atom/code. Agents on one host may share it."""
    log_level: str = "INFO"
    # -- log shipping (runtime_agent.log_shipping) --
    log_ship: bool = False
    """Send the agent's output to control as well (set by control for Ray, container and pod runs)."""
    log_ship_interval: float = 1.0
    """Seconds between two batches of shipped output."""
    log_ship_buffer_bytes: int = 16 * 1024 * 1024
    """Output kept while control does not answer; beyond it the oldest goes (control marks the gap)."""
    log_ship_exit_wait: float = 30.0
    """Seconds an ending agent waits for control to take the rest of its output."""
    # -- who may call a service (runtime_agent.serve_auth) --
    serve_access_refresh: float = Field(default=2.0, ge=0)
    """Seconds a service trusts its last known key and public flag; a rotated key stops within it."""
    serve_token_cache: float = Field(default=30.0, ge=0)
    """Seconds a service keeps control's answer about a user token (yes or no)."""
    serve_token_lookups: float = Field(default=10.0, gt=0)
    """Unknown user tokens a service asks control about per second at most (429 beyond)."""

    def run_dirs(self, run_id: int) -> RunDirs:
        """The run's directories (created), defaulting under `.atom/run-<id>`."""
        base = Path(".atom") / f"run-{run_id}"
        data = (self.data_dir or base / "data").absolute()
        dirs = RunDirs(
            data=data,
            model=(self.model_dir or base / "model").absolute(),
            log=(self.log_dir or base / "logs").absolute(),
            summary=(self.summary_dir or base / "summary").absolute(),
            share=(self.share_dir or base / "share").absolute(),
        )
        for path in (dirs.data, dirs.model, dirs.log, dirs.summary, dirs.share):
            path.mkdir(parents=True, exist_ok=True)
        return dirs


class RunDirs:
    """The five per-run directories (absolute paths)."""

    def __init__(self, *, data: Path, model: Path, log: Path, summary: Path, share: Path) -> None:
        self.data = data
        self.model = model
        self.log = log
        self.summary = summary
        self.share = share

    def __repr__(self) -> str:
        return f"RunDirs(data={self.data}, model={self.model})"
