"""The environment of an agent: built for it, never inherited from control.

An agent and its operator get: the ATOM_* knobs meant for agents (never control's own: its store
URL, secret key, API token, config file), the run's own variables (ATOM_RUN_*, the run token, the
per-run directories, the Cube Studio-style identity and resource variables under ATOM_ names), the
variables the node declares (environmentConf `env`, names listed in environmentConf `passEnv`, and
startNodeTask's `envs`), what Ray, CUDA, NCCL and the math libraries read, and the basics a process
expects (PATH, HOME, locale, temp dir, CA bundle). Cloud keys, tokens and anything else set for
control stay with control.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

#: control's own settings: never handed to an agent
CONTROL_ONLY = frozenset(
    {
        "ATOM_DB_URL",
        "ATOM_SECRET_KEY",
        "ATOM_API_TOKEN",
        "ATOM_CONFIG",
        "ATOM_HOST",
        "ATOM_PORT",
        "ATOM_PUBLIC_URL",
        "ATOM_AGENT_PASS_ENV",
    }
)
SECRET_LOOKING = re.compile(r"(TOKEN|SECRET|PASSW|CREDENTIAL|PRIVATE|_KEY$|_KEY_|APIKEY)", re.IGNORECASE)
#: prefixes Ray, CUDA and the numeric libraries read
RUNTIME_PREFIXES = ("RAY_", "CUDA_", "NVIDIA_", "NCCL_", "OMP_", "MKL_", "OPENBLAS_", "TORCH_", "LC_")
BASICS = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "LD_LIBRARY_PATH",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "PIP_CERT",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "GIT_SSL_CAINFO",
    }
)
#: set by control for each run, never taken from control's own environment
PER_RUN = frozenset({"RAY_ADDRESS", "CUDA_VISIBLE_DEVICES", "ATOM_RUN_TOKEN", "ATOM_SERVICE_TOKEN"})


def inherited(environ: Mapping[str, str], *, pass_env: Iterable[str] = ()) -> dict[str, str]:
    """What an agent takes from control's environment (see the module docstring)."""
    extra = set(pass_env)
    out: dict[str, str] = {}
    for key, value in environ.items():
        if key in PER_RUN or key in CONTROL_ONLY or key.startswith("ATOM_TEST_"):
            continue
        if key in extra:
            out[key] = value
        elif key.startswith("ATOM_"):
            if not SECRET_LOOKING.search(key[5:]):
                out[key] = value
        elif (key in BASICS or key.startswith(RUNTIME_PREFIXES)) and not SECRET_LOOKING.search(key):
            out[key] = value
    out.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    out.setdefault("RAY_AUTH_MODE", "disabled")
    out.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    out["PYTHONUNBUFFERED"] = "1"
    return out


def declared(environment_conf: Mapping[str, object], environ: Mapping[str, str]) -> dict[str, str]:
    """The variables a node declares: environmentConf `env` ({name: value}) and `passEnv` ([names])."""
    out: dict[str, str] = {}
    names = environment_conf.get("passEnv") or []
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if isinstance(names, list):
        for name in names:
            if str(name) in environ:
                out[str(name)] = environ[str(name)]
    values = environment_conf.get("env") or {}
    if isinstance(values, Mapping):
        out.update({str(k): str(v) for k, v in values.items()})
    return out
