"""Operator code delivery: bring the code that codeMode / codeAddress / codeVersion name onto this host.

Before the operator is imported (`pipeline.execute`), `fetch_code` makes its code importable; before
`atom-runtime serve --service-id` imports its serving object, `fetch_operator_code` brings the code of
the operator that trained the model (its ServeSpec carries that operator's code fields):

- MODULE (also the original runtime's CODE): already installed; nothing is fetched.
- GIT: the repository at a branch, tag or commit (`_git`).
- PIP: a requirement or wheel, `pip install --target` into its own directory (`_pip`).
- BUNDLE: a tar.gz or zip uploaded to control, downloaded with the run's token and runId, or the
  service's token and serviceId (`_bundle`).

Everything lands in `ATOM_CODE_CACHE` (default ~/.cache/atom/code) by content: a git commit, the
sha256 of a pip requirement (+ version, Python and platform), a bundle digest. Each directory is
built under `tmp/` and renamed into place under a per-key lock file (`_cache`), so concurrent
agents build it once and never see half of it. The directory goes first on `sys.path` and on
`PYTHONPATH` (inherited by Ray workers), is linked as `code` in the run's data directory, and
one log line says where the code came from.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from control.schemas import CodeMode
from runtime_agent.code._cache import masked
from runtime_agent.errors import CodeFetchError

if TYPE_CHECKING:
    import httpx

    from control.schemas import TaskSpec
    from runtime_agent.settings import AgentSettings, RunDirs

__all__ = [
    "DEFAULT_CACHE",
    "CodeAuth",
    "CodeSource",
    "FetchedCode",
    "activate",
    "cache_root",
    "fetch_code",
    "fetch_operator_code",
    "module_root",
]

logger = logging.getLogger(__name__)

DEFAULT_CACHE = Path("~/.cache/atom/code")


@dataclass
class FetchedCode:
    """Where one run's code came from."""

    mode: CodeMode
    address: str
    version: str
    """codeVersion, the commit it resolved to, or the bundle digest."""
    path: Path | None
    """The directory put on the import path (for MODULE: where the module is installed, if found)."""
    cached: bool
    seconds: float


class CodeSource(Protocol):
    """An operator's code fields (`OperatorSpec`, `ServeSpec`)."""

    @property
    def code_mode(self) -> str: ...
    @property
    def code_address(self) -> str: ...
    @property
    def code_version(self) -> str: ...
    @property
    def module_name(self) -> str:
        """The module the code must hold (only its top-level package is looked for)."""
        ...


@dataclass(frozen=True)
class CodeAuth:
    """How a BUNDLE download authenticates to control: a run's token and id, or a service's."""

    token: str | None = field(repr=False)
    run_id: int | None = None
    service_id: int | None = None


def cache_root(settings: AgentSettings) -> Path:
    """`ATOM_CODE_CACHE`, absolute (default ~/.cache/atom/code)."""
    return (settings.code_cache or DEFAULT_CACHE).expanduser().absolute()


async def fetch_code(
    spec: TaskSpec,
    settings: AgentSettings,
    dirs: RunDirs | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FetchedCode:
    """Make the operator's code importable here, fetching it when its codeMode says so.

    Args:
        spec: the task (its operator's codeMode, codeAddress, codeVersion and moduleName).
        settings: the agent's settings (code cache; control URL and run token for BUNDLE).
        dirs: the run's directories; the code is linked as `code` in its data directory.
        transport: an httpx transport for control (tests).

    Returns:
        Where the code came from (also logged as one line).

    Raises:
        CodeFetchError: the address, ref, file or digest does not exist, or lacks the module.
    """
    token = settings.run_token.get_secret_value() if settings.run_token else None
    auth = CodeAuth(token, run_id=spec.run_id or None)
    return await fetch_operator_code(spec.operator, settings, auth=auth, dirs=dirs, transport=transport)


async def fetch_operator_code(
    op: CodeSource,
    settings: AgentSettings,
    *,
    auth: CodeAuth,
    dirs: RunDirs | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FetchedCode:
    """Make the code that `op`'s codeMode / codeAddress / codeVersion name importable here.

    Args:
        op: the operator's code fields and the module the code must hold.
        settings: the agent's settings (code cache; control URL for BUNDLE).
        auth: the token (and run or service id) a BUNDLE download sends to control.
        dirs: the run's directories; the code is linked as `code` in its data directory.
        transport: an httpx transport for control (tests).

    Returns:
        Where the code came from (also logged as one line).

    Raises:
        CodeFetchError: the address, ref, file or digest does not exist, or lacks the module.
    """
    started = time.monotonic()
    try:
        mode = CodeMode(op.code_mode)
    except ValueError:
        known = ", ".join(m.value for m in CodeMode)
        raise CodeFetchError(f"operator codeMode {op.code_mode!r} is not one of {known}") from None
    address = op.code_address.strip()
    version = op.code_version.strip()
    top = op.module_name.strip().split(".")[0]
    if mode is CodeMode.MODULE:
        found = _find_installed(top) if top else None
        logger.info("code: MODULE %s from %s", op.module_name, found or "(not on the import path)")
        return FetchedCode(mode, address, version, found, True, time.monotonic() - started)
    root = cache_root(settings)
    if mode is CodeMode.GIT:
        from runtime_agent.code._git import fetch_git  # deferred: each mode loads its own part

        path, version, cached = await fetch_git(address, version, root)
    elif mode is CodeMode.PIP:
        from runtime_agent.code._pip import fetch_pip

        path, version, cached = await fetch_pip(address, version, root)
    else:
        from runtime_agent.code._bundle import fetch_bundle

        path, version, cached = await fetch_bundle(address, root, settings.control_url, auth, transport)
    what = f"{mode.value} {masked(address)}" + (f" at {version}" if version else "")
    path = module_root(path, top, what)
    activate([path])
    if dirs is not None:
        _link(dirs.data / "code", path)
    fetched = FetchedCode(mode, address, version, path, cached, time.monotonic() - started)
    logger.info(
        "code: %s %s %s -> %s (%s, %.2f s)",
        mode.value,
        masked(address),
        version or "-",
        path,
        "cached" if cached else "fetched",
        fetched.seconds,
    )
    return fetched


def activate(paths: list[Path]) -> None:
    """Put `paths` first on `sys.path` and on `PYTHONPATH` (processes started later, Ray workers)."""
    wanted = [str(p) for p in paths]
    sys.path[:] = wanted + [p for p in sys.path if p not in wanted]
    current = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in wanted]
    os.environ["PYTHONPATH"] = os.pathsep.join(wanted + current)
    importlib.invalidate_caches()


def module_root(path: Path, top: str, what: str) -> Path:
    """The directory under `path` that `top` imports from: `path`, `path/src`, or its only folder.

    Raises:
        CodeFetchError: no such module there (the message lists the top-level entries).
    """
    entries = sorted(e.name for e in path.iterdir()) if path.is_dir() else []
    folders = [e for e in entries if (path / e).is_dir() and not e.startswith((".", "_"))]
    candidates = [path, path / "src"] + ([path / folders[0]] if len(folders) == 1 else [])
    for base in candidates:
        if (base / top).is_dir() or (base / f"{top}.py").is_file() or any(base.glob(f"{top}.*.so")):
            return base
    shown = ", ".join(entries[:20]) + (f", ... ({len(entries)} in all)" if len(entries) > 20 else "")
    raise CodeFetchError(
        f"{what}: no module {top!r} in it (top-level entries: {shown or 'none'}): "
        "check moduleName and the code address"
    )


def _find_installed(top: str) -> Path | None:
    with contextlib.suppress(ImportError, ValueError):
        found = importlib.util.find_spec(top)
        if found is not None and found.origin not in (None, "built-in", "frozen"):
            return Path(str(found.origin)).parent
        if found is not None and found.submodule_search_locations:  # a namespace package
            return Path(next(iter(found.submodule_search_locations)))
    return None


def _link(link: Path, target: Path) -> None:
    with contextlib.suppress(OSError):
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)
