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
    """A bootstrap admin token: when set, every user call must send a token, and this one acts as
    an administrator of every space (create the first users with it, then prefer personal tokens)."""

    auth_required: bool | None = None
    """Whether user calls must carry a token. None (the default): required once a user with a
    password exists or `api_token` is set; until then every caller is the implied local admin, so a
    single-user install needs no login."""

    token_ttl_days: int = Field(default=90, ge=1, le=3650)
    """Lifetime of a token made by `atom login` or `POST /api/v1/tokens` without an expiry."""

    login_max_failures: int = Field(default=5, ge=1)
    """Wrong passwords allowed per user name, and per client address, within `login_window_s`;
    further logins are refused (429) until the window has passed."""

    login_window_s: float = Field(default=300.0, gt=0)

    service_auth: bool = True
    """Inference services require a token (their own key, or a user token reaching their space)
    unless deployed public; False makes every new service public."""

    # -- limits at the edge ---------------------------------------------------------------------

    max_body_bytes: int = Field(default=16 * 1024**2, ge=1024)
    """The largest request body the API reads (413 beyond); operator code uploads use `code_max_bytes`."""

    max_json_field_bytes: int = Field(default=1024**2, ge=1024)
    """The largest JSON object field (operatorConf, sourceConf ...) stored, serialized (422 beyond)."""

    yaml_max_bytes: int = Field(default=8 * 1024**2, ge=1024)
    """The largest spec file `atom apply` reads."""

    yaml_max_aliases: int = Field(default=1000, ge=0)
    """The most YAML aliases (`*name`) a spec may use: a bigger number is an alias bomb."""

    # -- logs -----------------------------------------------------------------------------------

    log_retention_days: float = Field(default=30.0, gt=0)
    """How long control keeps a finished run's log and metrics streamed from its agent."""

    heartbeat_timeout: float = 60.0
    """A running run whose agent has not sent a heartbeat for this long is failed."""

    agent_start_timeout: float = Field(default=120.0, gt=0)
    """Seconds a started agent may take to make its first call (imports, a cold disk) before its
    silence fails the run; once it has called, `heartbeat_timeout` applies."""

    reconcile_interval: float = 2.0
    """Seconds between reconcile passes."""

    # -- pipelines ------------------------------------------------------------------------------

    retry_base_s: float = Field(default=5.0, ge=0)
    """Backoff before a run's 2nd attempt; each later one waits twice as long (plus jitter)."""
    retry_cap_s: float = Field(default=300.0, ge=0)
    """The longest wait between two attempts."""
    retry_jitter: float = Field(default=0.2, ge=0, le=1)
    """Each backoff is stretched by a random fraction up to this (so retries do not come in waves)."""
    schedule_catchup_max: int = Field(default=100, ge=1)
    """After control was down, at most this many missed fire times of one schedule are run."""
    cache_watermark_timeout_s: float = Field(default=10.0, gt=0)
    """How long control waits for a source's data watermark (max key, ETag) when keying a cache."""

    service_ready_timeout: float = 120.0
    """An inference service not ready within this many seconds is failed."""

    service_restarts: int = Field(default=3, ge=0)
    """How often a ready inference service whose process ended is started again before it is failed."""

    service_port_range: tuple[int, int] = (18500, 18999)
    """Local ports handed to inference services started as processes."""

    python: str | None = None
    """The Python that runs agents and services; None: the one running control."""

    # -- dispatch ---------------------------------------------------------------------------------

    dispatch_adapters: dict[str, str] = Field(
        default_factory=lambda: {
            "COMMAND": "local",
            "RAY": "ray",
            "DOCKER": "docker",
            "KUBERNETES": "kubernetes",
        }
    )
    """Which adapter runs each runtime pattern (siRuntimePattern); a pattern not listed is refused.
    JSON in `ATOM_DISPATCH_ADAPTERS`, e.g. `{"COMMAND": "ray", "RAY": "ray"}`."""

    dispatch_space_adapters: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Per-space overrides of `dispatch_adapters`: `{"research": {"COMMAND": "ray"}}`."""

    dispatch_default_pattern: str = "COMMAND"
    """The runtime pattern of a run whose node has no service info."""

    dispatch_space_patterns: dict[str, str] = Field(default_factory=dict)
    """Per-space overrides of `dispatch_default_pattern`: `{"research": "RAY"}`."""

    agent_pass_env: list[str] = Field(default_factory=list)
    """Names of control's environment variables every agent also gets (JSON list). Agents get
    only ATOM_* knobs, the run's own variables and what Ray and CUDA need; nothing else leaks."""

    env_name: str = ""
    """Set as ATOM_ENV in every run (Cube Studio's KUBEFLOW_ENV: dev, test, prod ...)."""

    area: str = ""
    """Set as ATOM_AREA in every run (Cube Studio's KUBEFLOW_AREA: the region)."""

    # -- local processes --------------------------------------------------------------------------

    local_gpus: str | None = None
    """GPUs the local adapter hands out, one run each: a count (`2`), ids (`0,2`), empty for none;
    None: those `nvidia-smi -L` lists."""

    local_memory_limits: bool = True
    """Limit each local agent's memory (siMemory) with a cgroup where control can make one."""

    # -- Ray ----------------------------------------------------------------------------------------

    ray_address: str | None = None
    """GCS address (`host:port`) of an external Ray cluster; None: control starts one local head
    the first time a run needs Ray and stops it when control stops."""

    ray_dashboard_url: str | None = None
    """That cluster's dashboard / Jobs API URL; None: `http://<ray_address host>:8265`."""

    ray_head_cpus: int | None = None
    """CPUs of control's local head (None: all of this host's)."""

    ray_head_gpus: str = ""
    """GPU ids control's local head gets (`0,1`); keep them apart from `local_gpus`."""

    ray_python: str | None = None
    """The Python on the Ray nodes that runs `-m runtime_agent`; None: control's own `python`."""

    # -- Docker -------------------------------------------------------------------------------------

    docker_host: str | None = None
    """The Docker engine (`unix:///run/docker.sock`, `tcp://host:2375`); None: `DOCKER_HOST`, else
    the default socket."""

    docker_image: str = "atom-agent:latest"
    """The agent image of a run or service whose service info names none (siImageName)."""

    docker_pull: str = "missing"
    """When the Docker adapter pulls an image: `missing`, `always` or `never`."""

    docker_network: str = "host"
    """The network agents' containers join; `host` lets them reach control on loopback."""

    docker_volumes: list[str] = Field(default_factory=list)
    """Extra binds for every agent container (JSON list of `host:container[:ro]`). Control's home
    is always bound at the same path, so run directories and FILE connections under it work."""

    docker_name_prefix: str | None = None
    """The first part of container names (`{prefix}-run-7-1`); None: `atom-` and 8 hex digits of
    control's home, so that two controls sharing one engine never take each other's names."""

    # -- Kubernetes ---------------------------------------------------------------------------------

    k8s_kubeconfig: str | None = None
    """The kubeconfig file; None: `KUBECONFIG`, `~/.kube/config`, or the in-cluster service account."""

    k8s_context: str | None = None
    """The kubeconfig context; None: its current context."""

    k8s_image: str = "atom-agent:latest"
    """The agent image of a pod whose service info names none (siImageName)."""

    k8s_image_pull_policy: str = "IfNotPresent"
    """imagePullPolicy of every container: `IfNotPresent`, `Always` or `Never`."""

    k8s_namespace_prefix: str = ""
    """Each space runs in namespace `{prefix}{space}` (created when missing)."""

    k8s_control_url: str | None = None
    """The URL pods use to call control back; None: `public_url`, else `http://{host}:{port}`."""

    k8s_service_account: str | None = None
    """serviceAccountName of agent and service pods; None: the namespace's default."""

    k8s_service_host: str = "{service}.{namespace}.svc"
    """The host control reaches an inference service's pods at (its readiness check): a template
    with `{service}` and `{namespace}`; the default is the Service's cluster DNS name (control in
    the cluster). `127.0.0.1` where a port-forward or the pods share control's host."""

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
