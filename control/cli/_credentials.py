"""Where `atom login` keeps its tokens: `$XDG_CONFIG_HOME/atom/config.yaml` (or `~/.config/atom/...`).

```yaml
credentials:
  http://127.0.0.1:8470:        # the control URL the token is for
    token: atom_...
    userName: alice
    tokenId: 7
```

The file is the user's alone: written with mode 0600 (its folder 0700), and narrowed back to
0600 whenever it is found wider. A token for the local port also serves the embedded server,
which opens the same store.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import yaml

from control.cli._context import UsageError

FILE_MODE = 0o600


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "atom" / "config.yaml"


def key_for(url: str) -> str:
    return url.rstrip("/")


def local_url() -> str:
    """The local control's URL (`ATOM_PORT`): the key of an embedded server's token."""
    from control.settings import Settings

    return f"http://127.0.0.1:{Settings().port}"


def _narrow(path: Path) -> None:
    """Make `path` readable by its owner only, if it is not already."""
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(FILE_MODE)


def load(path: Path | None = None) -> dict[str, Any]:
    """The config file's content ({} when there is none)."""
    path = path or config_path()
    if not path.exists():
        return {}
    with contextlib.suppress(OSError):
        _narrow(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read {path}: {exc}: fix or delete it, then `atom login` again") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a YAML mapping: fix or delete it, then `atom login` again")
    return data


def save(data: dict[str, Any], path: Path | None = None) -> Path:
    """Write the config file atomically, mode 0600 from its first byte."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".yaml")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yaml.safe_dump(data, out, sort_keys=True)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def credential(url: str) -> dict[str, Any] | None:
    """What `atom login` stored for `url`, or None."""
    entry = (load().get("credentials") or {}).get(key_for(url))
    return entry if isinstance(entry, dict) and entry.get("token") else None


def stored_token(url: str) -> str | None:
    """The token `atom login` stored for `url`, or None (also when the file cannot be read)."""
    try:
        entry = credential(url)
    except UsageError:
        return None
    return str(entry["token"]) if entry else None


def remember(url: str, token: str, *, user: str, token_id: int) -> Path:
    data = load()
    creds = data.get("credentials")
    if not isinstance(creds, dict):
        creds = data["credentials"] = {}
    creds[key_for(url)] = {"token": token, "userName": user, "tokenId": token_id}
    return save(data)


def forget(url: str) -> dict[str, Any] | None:
    """Remove the token stored for `url`; return what was stored (None: nothing was)."""
    data = load()
    creds = data.get("credentials")
    if not isinstance(creds, dict) or key_for(url) not in creds:
        return None
    entry = creds.pop(key_for(url))
    save(data)
    return entry if isinstance(entry, dict) else None
